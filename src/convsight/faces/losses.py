"""Metric-learning losses for face embedders: FaceNet's triplet loss with online semi-hard mining, and
DeepFace's pairwise logistic loss on the embedding difference. Pure functions on tensors.

Triplet (Schroff et al. 2015): for anchor x, positive y (same person), negative z,
``max(||f(x) - f(y)||^2 - ||f(x) - f(z)||^2 + alpha, 0)``. Triplets are mined inside a P x K batch
(P people, K images each): every (anchor, positive) pair gets the *semi-hard* negative, the closest
negative still farther than the positive (``d_ap < d_an``, usually within the margin); when none is
farther, the farthest negative (the least hard of the hard ones), as in FaceNet's reference code.

Pairwise (Taigman et al. 2014): ``P(same) = sigmoid(w . |f1 - f2| + b)`` with learned w, b, trained
with binary cross-entropy over all pairs of the batch (positives and negatives weighted equally).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """(B, D) -> (B, B) squared Euclidean distances (clamped at 0 against rounding)."""
    sq = (x * x).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)


def semihard_triplets(d2: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mine (anchor, positive, negative) index triples from squared distances d2 (B, B), labels (B,).

    Every ordered pair of distinct same-label samples is an (anchor, positive); its negative is the
    closest different-label sample with ``d_an > d_ap``, or the farthest negative when none is.
    """
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    a, p = torch.nonzero(same & ~eye, as_tuple=True)  # (T,), (T,)
    d2 = d2.detach()  # the choice is not differentiated
    d_an = d2[a]  # (T, B): anchor to everyone
    neg = ~same[a]  # (T, B)
    farther = neg & (d_an > d2[a, p][:, None])
    inf = torch.finfo(d2.dtype).max
    semihard = torch.where(farther, d_an, torch.full_like(d_an, inf)).argmin(dim=1)
    hardest_fallback = torch.where(neg, d_an, torch.full_like(d_an, -inf)).argmax(dim=1)
    n = torch.where(farther.any(dim=1), semihard, hardest_fallback)
    has_neg = neg.any(dim=1)  # a batch of one identity has no negatives: no triplets
    return a[has_neg], p[has_neg], n[has_neg]


def triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """Mean over mined triplets of ``relu(d_ap - d_an + margin)`` (squared distances).

    embeddings (B, D) (L2-normalised, so the margin is on the unit sphere's scale); labels (B,).
    Zero (with a gradient path) when the batch yields no triplet.
    """
    d2 = pairwise_sq_distances(embeddings)
    a, p, n = semihard_triplets(d2, labels)
    if len(a) == 0:
        return embeddings.sum() * 0.0
    return F.relu(d2[a, p] - d2[a, n] + margin).mean()


def pair_logits(f1: Tensor, f2: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """DeepFace's weighted L1 distance: (N, D), (N, D), w (D,), b () -> (N,) logits of P(same)."""
    return (f1 - f2).abs() @ weight + bias


def pairwise_logistic_loss(f1: Tensor, f2: Tensor, same: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Binary cross-entropy of ``sigmoid(w . |f1 - f2| + b)`` against ``same`` (N,) bool, with the
    positive and negative pairs each weighted to half of the loss (batches hold far more negatives)."""
    logits = pair_logits(f1, f2, weight, bias)
    target = same.to(logits.dtype)
    n_pos = target.sum().clamp_min(1)
    n_neg = (1 - target).sum().clamp_min(1)
    per_pair = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return 0.5 * (per_pair * target).sum() / n_pos + 0.5 * (per_pair * (1 - target)).sum() / n_neg


def batch_pairwise_loss(embeddings: Tensor, labels: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """:func:`pairwise_logistic_loss` over every unordered pair i < j of a batch (B, D), labels (B,)."""
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    return pairwise_logistic_loss(embeddings[i], embeddings[j], labels[i] == labels[j], weight, bias)


class PairwiseHead(nn.Module):
    """The learned w (D,) and b of the pairwise loss. Starts as ``b - |f1 - f2|.sum()``: close = same."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), -4.0 / dim**0.5))
        self.bias = nn.Parameter(torch.tensor(2.0))

    def forward(self, f1: Tensor, f2: Tensor) -> Tensor:
        """(N, D), (N, D) -> (N,) probability that each pair is the same person."""
        return torch.sigmoid(pair_logits(f1, f2, self.weight, self.bias))
