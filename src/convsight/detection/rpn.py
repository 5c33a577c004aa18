"""Region Proposal Network (Ren et al. 2015, Faster R-CNN sec. 3.1) on one feature level.

A 3x3 conv slides over the feature map; at every cell, for each of ``A`` anchors (sizes x aspect
ratios, :class:`~convsight.ops.anchors.AnchorConfig`), a 1x1 conv predicts one objectness logit and
four box offsets (weights ``(1, 1, 1, 1)``).

Training (:func:`sample_anchors`, :func:`rpn_loss`): an anchor is positive with IoU >= 0.7 with some gt
or as a gt's best anchor (low-quality matches), negative with IoU < 0.3, else ignored; 256 anchors per
image are sampled with at most 50% positives. ``rpn_obj`` is the sigmoid BCE over the sample,
``rpn_box`` the smooth L1 (beta 1/9, as torchvision) of positive anchors' offsets divided by the sample
size. Unlike the paper, anchors crossing the image border are kept (as torchvision does).

Proposals (:func:`generate_proposals`): decode, clip, drop tiny boxes, keep the ``pre_nms_topk`` best
by objectness, NMS at 0.7, keep ``post_nms_topk`` (different counts in training and at test time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from convsight.errors import ConfigError
from convsight.ops.anchors import AnchorConfig, AnchorGenerator
from convsight.ops.box_coder import BoxCoder
from convsight.ops.boxes import box_iou, clip_boxes, remove_small_boxes
from convsight.ops.matching import check_sampling, match_boxes, sample_fg_bg
from convsight.structures import Target


@dataclass(frozen=True)
class RPNConfig:
    """anchor_sizes / aspect_ratios: anchor types per cell (``len(sizes) * len(ratios)``); fg_iou /
    bg_iou: matching thresholds; batch_size_per_image, positive_fraction: anchor sample per image;
    pre/post_nms_topk_train/test: proposal counts; nms_iou: NMS threshold; min_size: smallest proposal
    side in pixels; box_weights: box coder weights."""

    anchor_sizes: tuple[float, ...] = (16.0, 32.0, 64.0, 128.0, 256.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    fg_iou: float = 0.7
    bg_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_topk_train: int = 1000
    post_nms_topk_train: int = 300
    pre_nms_topk_test: int = 600
    post_nms_topk_test: int = 150
    nms_iou: float = 0.7
    min_size: float = 1.0
    box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        self.anchor_config()  # validates sizes and ratios with the anchor module's messages
        check_sampling("rpn", self.fg_iou, self.bg_iou, self.batch_size_per_image, self.positive_fraction,
                       count_name="batch_size_per_image")
        counts = (self.pre_nms_topk_train, self.post_nms_topk_train, self.pre_nms_topk_test, self.post_nms_topk_test)
        if min(counts) < 1:
            raise ConfigError(f"rpn: pre/post NMS top-k counts must be >= 1, got {counts}")
        if not 0.0 < self.nms_iou <= 1.0 or self.min_size < 0:
            raise ConfigError(f"rpn: nms_iou must lie in (0, 1] and min_size >= 0, got {self.nms_iou}, {self.min_size}")
        BoxCoder(self.box_weights)

    def anchor_config(self) -> AnchorConfig:
        return AnchorConfig(sizes=(tuple(self.anchor_sizes),), aspect_ratios=tuple(self.aspect_ratios))


# ---- pure maths ---------------------------------------------------------------------------------


def flatten_head_outputs(objectness: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor]:
    """Conv outputs ``(B, A, H, W)`` and ``(B, A * 4, H, W)`` -> ``(B, H * W * A)`` and ``(B, H * W * A, 4)``
    in the anchor order of :func:`~convsight.ops.anchors.grid_anchors` (cell row-major, type inner)."""
    b, a, h, w = objectness.shape
    obj = objectness.permute(0, 2, 3, 1).reshape(b, h * w * a)  # (B, H*W*A)
    d = deltas.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w * a, 4)  # (B, H*W*A, 4)
    return obj, d


def sample_anchors(
    anchors: Tensor, gt_boxes: Tensor, config: RPNConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """One image's anchor sample: ``anchors (A, 4)``, ``gt_boxes (G, 4)`` -> ``pos (P,)``, ``neg (Q,)``
    int64 anchor indices (``P + Q <= batch_size_per_image``, ``P <= positive_fraction`` of it) and
    ``matched_gt (P, 4)``, the gt box of each positive."""
    gt = gt_boxes.float().to(anchors.device)
    matches = match_boxes(box_iou(gt, anchors), config.fg_iou, config.bg_iou, allow_low_quality=True)  # (A,)
    pos, neg = sample_fg_bg(matches, config.batch_size_per_image, config.positive_fraction, generator)
    return pos, neg, gt[matches[pos]]


def rpn_loss(
    objectness: Tensor, deltas: Tensor, anchors: Tensor, targets: Sequence[Target], config: RPNConfig,
    coder: BoxCoder, generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """``objectness (B, A)`` logits, ``deltas (B, A, 4)``, ``anchors (A, 4)`` -> ``{"rpn_obj", "rpn_box"}``,
    both averaged over all sampled anchors of the batch."""
    logits, labels, box_terms = [], [], []
    for i, t in enumerate(targets):
        pos, neg, matched = sample_anchors(anchors, t.boxes, config, generator)
        idx = torch.cat([pos, neg])  # (P + Q,)
        logits.append(objectness[i, idx])
        labels.append(torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(objectness))
        box_terms.append(F.smooth_l1_loss(deltas[i, pos], coder.encode(matched, anchors[pos]),
                                          beta=1.0 / 9, reduction="sum"))
    all_logits, all_labels = torch.cat(logits), torch.cat(labels)  # (S,), (S,)
    n = max(len(all_labels), 1)
    obj = F.binary_cross_entropy_with_logits(all_logits, all_labels, reduction="sum") / n
    box = torch.stack(box_terms).sum() / n if box_terms else deltas.sum() * 0.0
    return {"rpn_obj": obj, "rpn_box": box}


def generate_proposals(
    objectness: Tensor, deltas: Tensor, anchors: Tensor, image_size: Sequence[int], coder: BoxCoder,
    pre_nms_topk: int, post_nms_topk: int, nms_iou: float = 0.7, min_size: float = 1.0,
) -> tuple[list[Tensor], list[Tensor]]:
    """``objectness (B, A)``, ``deltas (B, A, 4)``, ``anchors (A, 4)`` -> per image proposals
    ``(N_i, 4)`` (clipped to ``image_size``, ``N_i <= post_nms_topk``, best first) and their
    objectness probabilities ``(N_i,)``. Gradients do not flow into the boxes (callers detach)."""
    boxes_out, scores_out = [], []
    for obj, d in zip(objectness, deltas, strict=True):
        k = min(pre_nms_topk, obj.numel())
        top = obj.topk(k).indices  # (k,) best anchors first: NMS on all of them would be slow
        boxes = clip_boxes(coder.decode(d[top], anchors[top]), image_size)  # (k, 4)
        scores = obj[top].sigmoid()
        keep = remove_small_boxes(boxes, min_size)
        boxes, scores = boxes[keep], scores[keep]
        keep = nms(boxes, scores, nms_iou)[:post_nms_topk]  # sorted by score
        boxes_out.append(boxes[keep])
        scores_out.append(scores[keep])
    return boxes_out, scores_out


# ---- module -------------------------------------------------------------------------------------


class RegionProposalNetwork(nn.Module):
    """forward(feature ``(B, C, H/s, W/s)``, image_size, targets or ``None``) -> (proposals B tensors
    ``(N_i, 4)`` detached, losses ``{"rpn_obj", "rpn_box"}`` when targets are given)."""

    def __init__(self, in_channels: int, stride: int, config: RPNConfig) -> None:
        super().__init__()
        self.config, self.stride = config, stride
        self.anchor_generator = AnchorGenerator(config.anchor_config(), strides=[stride])
        a = self.anchor_generator.num_anchors_per_location()[0]
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.objectness = nn.Conv2d(in_channels, a, 1)
        self.deltas = nn.Conv2d(in_channels, 4 * a, 1)
        self.coder = BoxCoder(config.box_weights)
        for layer in (self.conv, self.objectness, self.deltas):  # the paper's N(0, 0.01) init
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    @property
    def num_anchors_per_location(self) -> int:
        return self.objectness.out_channels

    def anchors(self, feature: Tensor) -> Tensor:
        """``(H * W * A, 4)`` anchors of ``feature``'s grid."""
        return self.anchor_generator([feature])

    def forward(
        self, feature: Tensor, image_size: Sequence[int], targets: Sequence[Target] | None = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        x = F.relu(self.conv(feature))  # (B, C, H, W)
        objectness, deltas = flatten_head_outputs(self.objectness(x), self.deltas(x))  # (B, K), (B, K, 4)
        anchors = self.anchors(feature)  # (K, 4), K = H * W * A
        cfg = self.config
        pre, post = ((cfg.pre_nms_topk_train, cfg.post_nms_topk_train) if self.training
                     else (cfg.pre_nms_topk_test, cfg.post_nms_topk_test))
        # Approximate joint training: proposals are constants for the RoI head (no gradient through boxes).
        proposals, _ = generate_proposals(objectness.detach(), deltas.detach(), anchors, image_size, self.coder,
                                          pre, post, cfg.nms_iou, cfg.min_size)
        losses = rpn_loss(objectness, deltas, anchors, targets, cfg, self.coder) if targets is not None else {}
        return proposals, losses
