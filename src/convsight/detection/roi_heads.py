"""The RoI head shared by Fast R-CNN (Girshick 2015) and Faster R-CNN (Ren et al. 2015).

Given one feature map (a single level, e.g. stride 16) and region proposals per image:

1. Training sample (:func:`sample_rois`): the gt boxes are appended to the proposals (so every object
   has at least one perfect positive); a proposal is foreground (its best gt's class) with IoU >=
   ``fg_iou`` (0.5) and background with IoU in ``[bg_iou_low, fg_iou)`` (Fast R-CNN's ``[0.1, 0.5)``:
   proposals that touch an object are the hard negatives; those with IoU < 0.1 are left out). An image
   without objects has no hard negatives, so there every proposal is a background candidate. Per image
   ``rois_per_image`` (128) are drawn with up to ``positive_fraction`` (25%) foreground.
2. RoI max pooling (``torchvision.ops.roi_pool``, ``spatial_scale = 1 / stride``) to ``pool_size x
   pool_size`` (or, with ``pooling="align"``, Mask R-CNN's RoIAlign: bilinear samples at the exact
   sub-cell positions, where max pooling rounds a RoI to whole cells and so sees an object smaller
   than a cell the same wherever it sits in it), two hidden FC layers, then ``C + 1`` class logits
   (index ``C`` is background) and class-specific offsets ``(C, 4)`` (box coder weights ``(10, 10, 5, 5)``).
3. Loss (:func:`roi_head_loss`): ``cls`` cross-entropy over the sample + ``box`` smooth L1 of the gt
   class's offsets on foreground rois, divided by the sample size (Fast R-CNN's normalisation).
4. Inference (:func:`decode_roi_predictions`): softmax, per-class decoding, clipping; then the
   detector's :class:`~convsight.detection.base.PostprocessConfig` (score threshold, class-wise NMS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align, roi_pool

from convsight.detection.base import PostprocessConfig
from convsight.errors import ConfigError
from convsight.ops.box_coder import BoxCoder
from convsight.ops.boxes import box_iou, clip_boxes
from convsight.ops.matching import BACKGROUND, IGNORE, check_sampling, match_boxes, sample_fg_bg
from convsight.structures import Detections, Target

POOLINGS = ("max", "align")


@dataclass(frozen=True)
class RoIHeadConfig:
    """fg_iou / bg_iou_low: foreground at IoU >= fg_iou, background in [bg_iou_low, fg_iou);
    rois_per_image, positive_fraction: training sample per image; pool_size: RoI pooling output side;
    hidden: width of the two FC layers; box_weights: box coder weights; pooling: ``"max"`` (Fast
    R-CNN's RoI max pooling) or ``"align"`` (RoIAlign, 2 x 2 bilinear samples a bin)."""

    fg_iou: float = 0.5
    bg_iou_low: float = 0.1
    rois_per_image: int = 128
    positive_fraction: float = 0.25
    pool_size: int = 7
    hidden: int = 256
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    pooling: str = "max"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ConfigError(f"roi head: pooling must be one of {POOLINGS}, got {self.pooling!r}")
        check_sampling("roi head", self.fg_iou, self.bg_iou_low, self.rois_per_image, self.positive_fraction,
                       bg_name="bg_iou_low")
        if self.pool_size < 1 or self.hidden < 1:
            raise ConfigError(f"roi head: pool_size and hidden must be >= 1, got {self.pool_size}, {self.hidden}")
        BoxCoder(self.box_weights)  # validates the weights with its own message


# ---- pure maths ---------------------------------------------------------------------------------


def sample_rois(
    proposals: Tensor, target: Target, num_classes: int, config: RoIHeadConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Training sample for one image (see the module doc).

    proposals: ``(N, 4)`` xyxy pixels. Returns ``rois (M, 4)``, ``labels (M,)`` int64 (gt class, or
    ``num_classes`` for background) and ``matched_gt (M, 4)`` (zeros for background), with
    ``M <= rois_per_image``; foreground rois come first.
    """
    gt = target.boxes.float().to(proposals.device)
    props = torch.cat([gt, proposals.float()])  # (G + N, 4): gt first, so they are always candidates
    iou = box_iou(gt, props)  # (G, G + N)
    matches = match_boxes(iou, high=config.fg_iou, low=config.fg_iou)  # (G + N,) gt index or BACKGROUND
    if len(gt):  # Fast R-CNN's hard negatives: proposals below bg_iou_low are not used at all
        best = iou.max(dim=0).values  # (G + N,)
        matches[(matches == BACKGROUND) & (best < config.bg_iou_low)] = IGNORE
    pos, neg = sample_fg_bg(matches, config.rois_per_image, config.positive_fraction, generator)
    idx = torch.cat([pos, neg])  # (M,)
    labels = torch.full((len(idx),), num_classes, dtype=torch.int64, device=props.device)
    matched = torch.zeros((len(idx), 4), device=props.device)
    labels[: len(pos)] = target.labels.to(props.device)[matches[pos]]
    matched[: len(pos)] = gt[matches[pos]]
    return props[idx], labels, matched


def roi_head_loss(
    logits: Tensor, deltas: Tensor, labels: Tensor, rois: Tensor, matched: Tensor, coder: BoxCoder
) -> dict[str, Tensor]:
    """``logits (M, C+1)``, class-specific ``deltas (M, C, 4)``, ``labels (M,)`` (``C`` = background),
    ``rois``/``matched (M, 4)`` -> ``{"cls", "box"}``.

    ``box`` is the smooth L1 of the gt class's deltas on foreground rois, summed over the 4 numbers
    and divided by M (background rois count in the denominator, as in Fast R-CNN). An empty sample
    gives zero losses that still carry the graph (so ``backward`` works).
    """
    if len(labels) == 0:
        zero = logits.sum() * 0.0 + deltas.sum() * 0.0
        return {"cls": zero, "box": zero.clone()}
    num_classes = deltas.shape[1]
    cls = F.cross_entropy(logits, labels)
    fg = torch.nonzero(labels < num_classes).flatten()  # (F,)
    pred = deltas[fg, labels[fg]]  # (F, 4): each roi's own class slot
    target = coder.encode(matched[fg], rois[fg])  # (F, 4)
    box = F.smooth_l1_loss(pred, target, beta=1.0, reduction="sum") / len(labels)
    return {"cls": cls, "box": box}


def decode_roi_predictions(
    logits: Tensor, deltas: Tensor, rois: Tensor, coder: BoxCoder, image_size: Sequence[int]
) -> tuple[Tensor, Tensor]:
    """``logits (N, C+1)``, ``deltas (N, C, 4)``, ``rois (N, 4)`` -> object-class probabilities
    ``(N, C)`` (background column dropped) and class-specific boxes ``(N, C, 4)`` clipped to
    ``image_size = (H, W)``."""
    probs = logits.softmax(dim=1)[:, :-1]  # (N, C)
    boxes = coder.decode(deltas, rois[:, None, :])  # (N, C, 4)
    return probs, clip_boxes(boxes, image_size)


# ---- module -------------------------------------------------------------------------------------


class RoIHead(nn.Module):
    """RoI pooling + two FC layers + class / box predictors on one feature level.

    forward(feature ``(B, C_f, H/s, W/s)``, proposals B tensors ``(N_i, 4)``, targets or ``None``,
    image_size, postprocess or ``None``) -> (losses ``{"cls", "box"}`` when targets are given,
    detections when ``postprocess`` is given).
    """

    def __init__(self, in_channels: int, stride: int, num_classes: int, config: RoIHeadConfig) -> None:
        super().__init__()
        self.num_classes, self.stride, self.config = num_classes, stride, config
        self.coder = BoxCoder(config.box_weights)
        side = config.pool_size
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * side * side, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True),
        )
        self.cls = nn.Linear(config.hidden, num_classes + 1)
        self.box = nn.Linear(config.hidden, 4 * num_classes)
        # Fast R-CNN's init: small class weights, tiny box weights so an untrained head keeps proposals.
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.box.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.box.bias)

    def predict(self, feature: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Per-image rois -> logits ``(M, C+1)`` and deltas ``(M, C, 4)`` (M = all rois, in order)."""
        s = self.config.pool_size
        boxes, scale = [r.float() for r in rois], 1.0 / self.stride
        if self.config.pooling == "align":
            pooled = roi_align(feature.float(), boxes, output_size=s, spatial_scale=scale, sampling_ratio=2, aligned=True)
        else:
            pooled = roi_pool(feature.float(), boxes, output_size=s, spatial_scale=scale)  # (M, C_f, s, s)
        x = self.fc(pooled)  # (M, hidden)
        return self.cls(x), self.box(x).view(-1, self.num_classes, 4)  # (M, C+1), (M, C, 4)

    def forward(
        self,
        feature: Tensor,
        proposals: list[Tensor],
        targets: list[Target] | None,
        image_size: Sequence[int],
        postprocess: PostprocessConfig | None = None,
    ) -> tuple[dict[str, Tensor], list[Detections]]:
        losses: dict[str, Tensor] = {}
        if targets is not None:
            samples = [sample_rois(p, t, self.num_classes, self.config)
                       for p, t in zip(proposals, targets, strict=True)]
            rois = [s[0] for s in samples]
            logits, deltas = self.predict(feature, rois)
            losses = roi_head_loss(logits, deltas, torch.cat([s[1] for s in samples]), torch.cat(rois),
                                   torch.cat([s[2] for s in samples]), self.coder)
        detections: list[Detections] = []
        if postprocess is not None:
            with torch.no_grad():
                logits, deltas = self.predict(feature, proposals)
                counts = [len(p) for p in proposals]
                for lg, dl, props in zip(logits.split(counts), deltas.split(counts), proposals, strict=True):
                    if len(props) == 0:
                        detections.append(Detections.empty(feature.device))
                        continue
                    probs, boxes = decode_roi_predictions(lg, dl, props, self.coder, image_size)
                    detections.append(postprocess(boxes, probs, image_size=tuple(image_size)))
        return losses, detections
