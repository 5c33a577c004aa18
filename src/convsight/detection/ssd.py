"""SSD, the Single Shot MultiBox Detector (Liu et al. 2016).

Default boxes tile several feature maps of decreasing resolution; a 3x3 conv on each map predicts,
for every default box, ``C + 1`` class logits (index 0 = background) and 4 offsets from that box.

- Feature maps: backbone levels (default strides 8, 16, 32) plus ``extra_layers`` SSD-style blocks
  (1x1 conv halving the channels, then a stride-2 3x3 conv) for coarser maps (strides 64, 128, ...).
- Default boxes (sec. 2.2): level ``k`` of ``m`` has scale ``s_k`` linear in ``[s_min, s_max]``, one box
  per aspect ratio plus an extra square of scale ``sqrt(s_k s_{k+1})`` (:mod:`convsight.ops.anchors`).
  Scales are fractions of the shorter image side.
- Matching: every gt takes its best default box (greedily, so two gts never share that box), then
  every default box with IoU >= 0.5 takes the gt it overlaps most.
- Offsets: the (dx, dy, dw, dh) encoding with variances (0.1, 0.1, 0.2, 0.2).
- Loss ``(L_conf + alpha L_loc) / N``: smooth-L1 on positives, cross-entropy on positives and the
  hardest negatives (at most ``neg_pos_ratio`` per positive, per image, ranked by background loss);
  ``N`` = positives in the batch (at least 1, so an all-empty batch gives a zero loss, not NaN).
- Decoding: softmax, drop the background column, class-specific scores on shared boxes, class-wise NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.detection.base import (
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.detection.input_sides import check_input_sides, check_sized_inputs
from convsight.ops.anchors import (
    SSD_ASPECT_RATIOS,
    AnchorConfig,
    AnchorGenerator,
    ssd_default_box_config,
)
from convsight.ops.box_coder import BoxCoder
from convsight.ops.boxes import box_iou
from convsight.structures import Detections, DetectorOutput, Target

BACKGROUND = -1  # match index of a default box that teaches "background"


@dataclass(frozen=True, kw_only=True)
class SSDConfig(DetectorConfig):
    """levels: backbone strides (or names) whose maps carry default boxes; extra_layers: stride-2
    blocks appended after the deepest level, each giving one more (coarser) map; extra_channels: their
    width; s_min, s_max: smallest and largest default-box scale (fractions of the shorter side; the
    paper uses 0.2..0.9 plus 0.1 on conv4_3, we default to 0.1 so small objects get boxes);
    aspect_ratios: ``w / h`` ratios, flat (every level) or one tuple per level; iou_threshold: default
    boxes at or above it become positives; neg_pos_ratio: mined negatives per positive; box_weight:
    ``alpha``; variances: SSD's box-coder variances; input_sides: None or the ``(lo, hi)`` input sides
    it runs at, default boxes kept at their pixels at ``image_size`` (:mod:`convsight.detection.input_sides`)."""

    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.05, iou_threshold=0.45, topk=100, pre_nms_topk=400))
    levels: tuple[int | str, ...] = (8, 16, 32)
    extra_layers: int = 2
    extra_channels: int = 128
    s_min: float = 0.1
    s_max: float = 0.9
    aspect_ratios: tuple = SSD_ASPECT_RATIOS
    iou_threshold: float = 0.5
    neg_pos_ratio: float = 3.0
    box_weight: float = 1.0
    variances: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    input_sides: tuple[int, int] | None = None

    def validate(self) -> None:
        check_input_sides(self.arch, self.input_sides)
        if not self.levels:
            raise self.error("levels must name at least one backbone level")
        if self.extra_layers < 0 or self.extra_channels < 1:
            raise self.error(f"need extra_layers >= 0 and extra_channels >= 1, got "
                             f"{self.extra_layers}, {self.extra_channels}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise self.error(f"iou_threshold must lie in (0, 1], got {self.iou_threshold}")
        if self.neg_pos_ratio < 0 or self.box_weight < 0:
            raise self.error(f"neg_pos_ratio and box_weight must be >= 0, got {self.neg_pos_ratio}, {self.box_weight}")
        BoxCoder.from_variances(self.variances)  # validates the variances
        self.default_box_config()  # validates scales and aspect ratios (one tuple per level if nested)
        # Exact grids: each map must tile the image, so the sides must divide by the coarsest stride.
        ints = [lv for lv in self.levels if isinstance(lv, int)]
        if len(ints) == len(self.levels):
            coarsest = max(ints) * 2**self.extra_layers
            self.check_divisible(coarsest, f"the coarsest stride: levels {self.levels} plus "
                                           f"{self.extra_layers} extra layers")

    @property
    def num_maps(self) -> int:
        return len(self.levels) + self.extra_layers

    def default_box_config(self) -> AnchorConfig:
        return ssd_default_box_config(self.num_maps, self.s_min, self.s_max, min(self.image_size),
                                      self.aspect_ratios)


# ---- pure maths ---------------------------------------------------------------------------------


def match_default_boxes(gt_boxes: Tensor, default_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """``gt_boxes (G, 4)``, ``default_boxes (A, 4)`` xyxy -> ``(A,)`` int64 gt index or -1 (background).

    Step 1 (the paper's "best jaccard overlap"): each gt gets its best default box. This is done
    greedily over the (gt, box) pairs by IoU, so that two gts wanting the same box do not leave one of
    them without any positive (ssd.pytorch lets the later gt overwrite the earlier). A gt that overlaps
    no box at all (degenerate, or outside the image) gets none. Step 2: every other default box with
    IoU >= ``iou_threshold`` to some gt is matched to the gt it overlaps most.
    """
    num_gt, num_boxes = gt_boxes.shape[0], default_boxes.shape[0]
    matches = torch.full((num_boxes,), BACKGROUND, dtype=torch.int64, device=default_boxes.device)
    if num_gt == 0 or num_boxes == 0:
        return matches
    iou = box_iou(gt_boxes.to(default_boxes), default_boxes)  # (G, A)
    best_iou, best_gt = iou.max(dim=0)  # (A,), (A,)
    matches[best_iou >= iou_threshold] = best_gt[best_iou >= iou_threshold]
    free = iou.clone()
    for _ in range(min(num_gt, num_boxes)):  # G is small: one argmax over (G, A) per gt
        flat = int(free.argmax())
        g, a = divmod(flat, num_boxes)
        if free[g, a] <= 0:
            break  # the remaining gts overlap no free box
        matches[a] = g
        free[g, :] = -1.0  # this gt is served
        free[:, a] = -1.0  # this box is taken
    return matches


def encode_ssd_targets(
    targets: Sequence[Target], default_boxes: Tensor, coder: BoxCoder, iou_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Per-default-box training targets for a batch.

    Returns ``labels (B, A)`` int64 (0 = background, ``1 + class`` for objects) and ``box_targets
    (B, A, 4)`` offsets (zeros on background boxes, which the loss ignores).
    """
    num_boxes = default_boxes.shape[0]
    labels = torch.zeros((len(targets), num_boxes), dtype=torch.int64, device=default_boxes.device)
    box_targets = torch.zeros((len(targets), num_boxes, 4), dtype=default_boxes.dtype, device=default_boxes.device)
    for i, t in enumerate(targets):
        matches = match_default_boxes(t.boxes, default_boxes, iou_threshold)  # (A,)
        pos = matches >= 0
        if not pos.any():
            continue
        gt = t.boxes.to(default_boxes)[matches[pos]]  # (P, 4) the gt of each positive box
        labels[i, pos] = t.labels.to(labels.device)[matches[pos]] + 1  # shift: 0 is background
        box_targets[i, pos] = coder.encode(gt, default_boxes[pos])  # (P, 4)
    return labels, box_targets


def hard_negative_mining(bg_loss: Tensor, positive_mask: Tensor, ratio: float = 3.0) -> Tensor:
    """The negatives that count in the confidence loss, per image.

    bg_loss: ``(B, A)`` or ``(A,)`` loss of predicting background (``-log p_0``); positive_mask: same
    shape, bool. Each image keeps its ``min(floor(ratio * num_pos), num_neg)`` negatives with the
    highest ``bg_loss`` (the most confident false positives). Returns a bool mask of that shape.
    """
    squeeze = bg_loss.ndim == 1
    if squeeze:
        bg_loss, positive_mask = bg_loss[None], positive_mask[None]  # (1, A)
    num_pos = positive_mask.sum(dim=1)  # (B,)
    num_neg = (~positive_mask).sum(dim=1)  # (B,)
    keep = torch.minimum((num_pos.to(torch.float64) * ratio).floor().to(torch.int64), num_neg)  # (B,)
    # Positives rank last; rank of each box when sorted by descending loss, then the top `keep`.
    ranked = bg_loss.detach().masked_fill(positive_mask, float("-inf"))
    order = ranked.argsort(dim=1, descending=True)  # (B, A)
    rank = order.argsort(dim=1)  # (B, A): position of each box in that order
    mask = (rank < keep[:, None]) & ~positive_mask
    return mask[0] if squeeze else mask


def ssd_loss(
    cls_logits: Tensor,
    box_deltas: Tensor,
    labels: Tensor,
    box_targets: Tensor,
    neg_pos_ratio: float = 3.0,
    box_weight: float = 1.0,
) -> dict[str, Tensor]:
    """``{"cls": L_conf / N, "box": alpha * L_loc / N}``.

    cls_logits ``(B, A, C + 1)``, box_deltas ``(B, A, 4)``, labels ``(B, A)`` (0 = background),
    box_targets ``(B, A, 4)``. ``N`` is the number of positives in the batch, at least 1.
    """
    num_classes1 = cls_logits.shape[-1]
    ce = F.cross_entropy(cls_logits.reshape(-1, num_classes1), labels.reshape(-1), reduction="none")
    ce = ce.view(labels.shape)  # (B, A)
    pos = labels > 0  # (B, A)
    # For a negative, its cross-entropy IS its background loss; positives are excluded by the mask.
    neg = hard_negative_mining(ce.detach(), pos, neg_pos_ratio)  # (B, A)
    n = pos.sum().clamp(min=1).to(cls_logits.dtype)
    cls = (ce * (pos | neg).to(ce.dtype)).sum() / n
    box = F.smooth_l1_loss(box_deltas[pos], box_targets[pos], reduction="sum", beta=1.0) / n
    return {"cls": cls, "box": box_weight * box}


def decode_ssd(
    cls_logits: Tensor, box_deltas: Tensor, default_boxes: Tensor, coder: BoxCoder
) -> tuple[Tensor, Tensor]:
    """One image: ``cls_logits (A, C + 1)``, ``box_deltas (A, 4)`` -> boxes ``(A, 4)`` xyxy pixels and
    object-class scores ``(A, C)`` (softmax over ``C + 1``, background column dropped)."""
    scores = cls_logits.softmax(dim=-1)[:, 1:]  # (A, C)
    return coder.decode(box_deltas, default_boxes), scores


# ---- the module ---------------------------------------------------------------------------------


def _extra_block(c_in: int, c_out: int) -> nn.Sequential:
    """SSD's extra feature layer: 1x1 conv to half width, then a 3x3 stride-2 conv (halves H and W).

    No BatchNorm, as in the paper: the coarsest maps can be 1x1, where batch statistics of a batch of
    one are undefined."""
    mid = max(c_out // 2, 1)
    return nn.Sequential(
        nn.Conv2d(c_in, mid, 1), nn.ReLU(inplace=True),
        nn.Conv2d(mid, c_out, 3, stride=2, padding=1), nn.ReLU(inplace=True),
    )


def _flatten_head(x: Tensor, k: int) -> Tensor:
    """``(B, A_l * K, H, W)`` -> ``(B, H * W * A_l, K)`` in the anchor order of convsight.ops.anchors."""
    b, _, h, w = x.shape
    return x.view(b, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, k)


@register_detector("ssd", SSDConfig)
class SSDDetector(Detector):
    """Backbone levels + extra layers -> per-map 3x3 conv heads -> default-box logits and offsets."""

    config: SSDConfig

    def __init__(self, num_classes: int, config: SSDConfig) -> None:
        super().__init__(num_classes, config)
        channels = [f.channels for f in self.backbone.feature_info]
        self.extras = nn.ModuleList()
        for _ in range(config.extra_layers):
            self.extras.append(_extra_block(channels[-1], config.extra_channels))
            channels.append(config.extra_channels)
        # No fixed strides: the generator uses image / feature size per axis, exact by the config check.
        self.default_boxes = AnchorGenerator(config.default_box_config())
        self.box_counts = self.default_boxes.num_anchors_per_location()  # k_l per map
        self.cls_heads = nn.ModuleList(
            nn.Conv2d(c, k * (num_classes + 1), 3, padding=1) for c, k in zip(channels, self.box_counts))
        self.box_heads = nn.ModuleList(nn.Conv2d(c, k * 4, 3, padding=1) for c, k in zip(channels, self.box_counts))
        self.coder = BoxCoder.from_variances(config.variances)

    def backbone_levels(self, config: SSDConfig) -> list[int | str]:
        return list(config.levels)

    # With input_sides: any sides that 32 divides. The extra maps then need not tile the input
    # exactly (320 px: 5 -> 3 cells); the default boxes spread over it (image / map size per axis).
    check_inputs = check_sized_inputs

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` -> backbone maps then extra maps, by increasing stride."""
        feats = self.backbone(images)
        for block in self.extras:
            feats.append(block(feats[-1]))  # (B, C, H_l, W_l) -> (B, extra_channels, H_l / 2, W_l / 2)
        return feats

    def predict(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> cls_logits ``(B, A, C + 1)``, box_deltas ``(B, A, 4)``, default boxes ``(A, 4)``."""
        feats = self.feature_maps(images)
        k = self.num_classes + 1
        cls = torch.cat([_flatten_head(h(f), k) for h, f in zip(self.cls_heads, feats)], dim=1)  # (B, A, C+1)
        box = torch.cat([_flatten_head(h(f), 4) for h, f in zip(self.box_heads, feats)], dim=1)  # (B, A, 4)
        return cls, box, self.default_boxes(feats, tuple(images.shape[-2:]))

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        postprocess = postprocess or self.postprocess
        cls, box, defaults = self.predict(images)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            labels, box_t = encode_ssd_targets(targets, defaults, self.coder, self.config.iou_threshold)
            losses = ssd_loss(cls, box, labels, box_t, self.config.neg_pos_ratio, self.config.box_weight)
        detections: list[Detections] = []
        if not self.training:
            for i in range(images.shape[0]):
                boxes, scores = decode_ssd(cls[i].detach(), box[i].detach(), defaults, self.coder)
                detections.append(postprocess(boxes, scores, image_size=tuple(images.shape[-2:])))
        return DetectorOutput(detections=detections, losses=losses)
