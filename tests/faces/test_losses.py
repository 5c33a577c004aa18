"""Triplet loss with semi-hard mining and the pairwise logistic loss, on tiny hand-made tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convsight.faces.losses import (
    PairwiseHead,
    batch_pairwise_loss,
    pairwise_logistic_loss,
    pairwise_sq_distances,
    semihard_triplets,
    triplet_loss,
)


def test_pairwise_sq_distances() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    d2 = pairwise_sq_distances(x)
    assert torch.allclose(d2, torch.cdist(x, x) ** 2, atol=1e-5)


def test_mining_picks_semihard_negative() -> None:
    # anchor 0 at 0, positive 1 at 1 (d_ap^2 = 1); negatives at 0.5 (hard), 1.1 (semi-hard), 3 (easy)
    x = torch.tensor([[0.0], [1.0], [0.5], [1.1], [3.0]])
    labels = torch.tensor([0, 0, 1, 2, 3])
    a, p, n = semihard_triplets(pairwise_sq_distances(x), labels)
    pairs = {(int(i), int(j)): int(k) for i, j, k in zip(a, p, n)}
    assert set(pairs) == {(0, 1), (1, 0)}
    assert pairs[(0, 1)] == 3  # farther than the positive, closest such: within the margin
    # from anchor 1 (positive 0 at d^2 = 1), negatives at d^2 0.25, 0.01, 4: only 4 is farther
    assert pairs[(1, 0)] == 4


def test_mining_falls_back_to_farthest_negative_when_all_are_hard() -> None:
    x = torch.tensor([[0.0], [2.0], [0.5], [1.0]])
    a, p, n = semihard_triplets(pairwise_sq_distances(x), torch.tensor([0, 0, 1, 2]))
    assert dict(zip(a.tolist(), n.tolist()))[0] == 3


def test_triplet_loss_value_and_gradient() -> None:
    x = torch.tensor([[0.0], [1.0], [1.1]], requires_grad=True)
    loss = triplet_loss(x, torch.tensor([0, 0, 1]), margin=0.2)
    # (0,1): d_ap 1, negative 2 (1.21): 1 - 1.21 + 0.2 = -0.01 -> 0; (1,0): d_ap 1, d_an 0.01 -> 1.19
    assert torch.isclose(loss, torch.tensor(1.19 / 2))
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    single = triplet_loss(torch.randn(4, 3, requires_grad=True), torch.zeros(4, dtype=torch.long))
    assert single.item() == 0.0  # no negatives in the batch: no triplets


def test_pairwise_logistic_loss_matches_bce_and_balances() -> None:
    f1, f2 = torch.randn(6, 4), torch.randn(6, 4)
    same = torch.tensor([True, False, False, False, False, False])
    w, b = torch.randn(4), torch.tensor(0.3)
    logits = (f1 - f2).abs() @ w + b
    bce = F.binary_cross_entropy_with_logits(logits, same.float(), reduction="none")
    expected = 0.5 * bce[0] + 0.5 * bce[1:].mean()
    assert torch.isclose(pairwise_logistic_loss(f1, f2, same, w, b), expected)


def test_losses_fall_when_optimised() -> None:
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(3)
    x = F.normalize(torch.randn(12, 8), dim=1).requires_grad_()
    head = PairwiseHead(8)
    opt = torch.optim.SGD([x, *head.parameters()], lr=0.5)
    first_t = first_p = None
    for _ in range(30):
        emb = F.normalize(x, dim=1)
        lt = triplet_loss(emb, labels)
        lp = batch_pairwise_loss(emb, labels, head.weight, head.bias)
        first_t, first_p = first_t or lt.item(), first_p or lp.item()
        opt.zero_grad()
        (lt + lp).backward()
        opt.step()
    assert lt.item() < 0.5 * first_t and lp.item() < 0.8 * first_p
    p = head(emb[:1].detach().expand(2, -1), emb[[1, 3]].detach())
    assert p[0] > p[1]  # same person more probable than a different one
