"""Single-object localization: classify the image and regress one box (the lecture's first detector).

A backbone, its last feature map made into one vector, and two fully connected heads:

- class logits ``(B, C + 1)``: the ``C`` object classes plus one extra column, index ``C``, for
  "no object" (the lecture's ``p_c = 0``);
- a box ``(B, 4)``: ``(cx, cy, w, h)`` as fractions of the image side, squashed into ``[0, 1]`` by a
  sigmoid so an untrained head cannot predict a box outside the image.

The vector keeps where things are (``pool="flatten"``, the default): the last map (stride 32), its
channels reduced by a 1x1 conv, flattened into a fully connected layer, as AlexNet's fc6 read conv5's
6x6 map in the lecture's localization network (and OverFeat's regressor its 5x5 one). Global average
pooling (``pool="average"``) throws the positions away: its box head can only guess them from the
zero-padding at the image border, and in short runs on single-object scenes its boxes stayed near
the image centre. ``pool="split"`` gives the class head the averaged map (position-free, as a
classifier wants) and the box head the flattened one.

Loss ``J = J_cls + alpha * J_box``: cross-entropy over the ``C + 1`` classes, plus the squared error of
the four normalised box numbers, counted only for images that hold an object (there is no box to
regress on an empty image). An image with several objects is reduced to ONE target, by default its
largest box (``target_object="largest"``; ``"first"`` takes the first listed): the model can only ever
answer one box, so it should answer the most prominent one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.detection.base import (
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.ops.boxes import (
    box_area,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    xyxy_to_cxcywh,
)
from convsight.structures import Detections, DetectorOutput, Target

TARGET_RULES = ("largest", "first")
POOLS = ("flatten", "average", "split")


@dataclass(frozen=True, kw_only=True)
class LocalizationConfig(DetectorConfig):
    """box_weight: ``alpha`` in ``J = J_cls + alpha * J_box`` (the box term is a squared error of
    numbers in ``[0, 1]``, much smaller than a cross-entropy, hence > 1); target_object: which gt box an
    image with several objects teaches (``"largest"`` or ``"first"``); hidden: width of the shared FC
    layer (0: heads sit directly on the pooled features); pool: ``"flatten"`` (the last map, its
    channels reduced to ``reduce`` by a 1x1 conv, flattened: positions kept), ``"average"``
    (global average pooling: positions lost, see the module doc) or ``"split"`` (classes from the
    average, the box from the flattened map)."""

    image_size: tuple[int, int] = (128, 128)
    postprocess: PostprocessConfig = field(default_factory=lambda: PostprocessConfig(score_threshold=0.3, topk=1))
    box_weight: float = 5.0
    target_object: str = "largest"
    hidden: int = 256
    pool: str = "flatten"
    reduce: int = 32

    def validate(self) -> None:
        if self.box_weight < 0:
            raise self.error(f"box_weight (alpha) must be >= 0, got {self.box_weight}")
        self.check_choices(target_object=TARGET_RULES, pool=POOLS)
        if self.hidden < 0 or self.reduce < 1:
            raise self.error(f"need hidden >= 0 and reduce >= 1, got {self.hidden}, {self.reduce}")
        if self.pool != "average":
            self.check_divisible(32, "the flattened map is the backbone's stride-32 one")


# ---- pure maths ---------------------------------------------------------------------------------


def pick_object(target: Target, rule: str = "largest") -> int | None:
    """Index of the gt box that an image teaches (``None`` for an image without objects)."""
    if len(target) == 0:
        return None
    if rule == "first":
        return 0
    return int(box_area(target.boxes).argmax())


def encode_localization_targets(
    targets: list[Target], num_classes: int, image_size: tuple[int, int], rule: str = "largest"
) -> tuple[Tensor, Tensor, Tensor]:
    """Targets -> ``labels (B,)`` int64 (``num_classes`` = "no object"), ``boxes (B, 4)`` normalised
    ``(cx, cy, w, h)`` in ``[0, 1]`` (zeros where there is no object) and ``has_object (B,)`` bool."""
    h, w = image_size
    labels = torch.full((len(targets),), num_classes, dtype=torch.int64)
    boxes = torch.zeros((len(targets), 4))
    for i, t in enumerate(targets):
        k = pick_object(t, rule)
        if k is None:
            continue
        labels[i] = t.labels[k]
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        boxes[i] = xyxy_to_cxcywh(t.boxes[k].float().cpu()) / scale  # (4,) fractions of the image
    return labels, boxes.clamp(0, 1), labels != num_classes


def localization_loss(
    logits: Tensor, boxes: Tensor, labels: Tensor, box_targets: Tensor, has_object: Tensor, box_weight: float
) -> dict[str, Tensor]:
    """``{"cls": J_cls, "box": alpha * J_box}`` for ``logits (B, C+1)``, predicted ``boxes (B, 4)``
    in ``[0, 1]``, ``labels (B,)``, ``box_targets (B, 4)`` and ``has_object (B,)``.

    J_box is the squared error summed over the 4 numbers, averaged over images with an object (zero,
    still attached to the graph, when the batch has none)."""
    cls = F.cross_entropy(logits, labels)
    sq = ((boxes - box_targets) ** 2).sum(dim=1)  # (B,)
    n_obj = has_object.sum().clamp(min=1)
    box = (sq * has_object.to(sq.dtype)).sum() / n_obj
    return {"cls": cls, "box": box_weight * box}


def decode_localization(
    logits: Tensor, boxes: Tensor, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``logits (B, C+1)``, ``boxes (B, 4)`` normalised cxcywh -> best object class ``(B,)``, its
    probability ``(B,)``, the box xyxy pixels ``(B, 4)`` and ``is_object (B,)`` (False where "no
    object" has the highest probability)."""
    h, w = image_size
    probs = logits.softmax(dim=1)  # (B, C+1)
    num_classes = probs.shape[1] - 1
    score, label = probs[:, :num_classes].max(dim=1)  # (B,), best OBJECT class
    is_object = probs.argmax(dim=1) != num_classes
    scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    xyxy = clip_boxes(cxcywh_to_xyxy(boxes * scale), (h, w))  # (B, 4) pixels
    return label, score, xyxy, is_object


class LocalizationMetrics(NamedTuple):
    accuracy: float  # predicted class (or "no object") == target class (or "no object")
    mean_iou: float  # over images with an object; a missing prediction counts IoU 0


def localization_metrics(
    preds: list[Detections], targets: list[Target], rule: str = "largest"
) -> LocalizationMetrics:
    """Accuracy and mean IoU of one-box-per-image predictions against the object each target teaches
    (see :func:`pick_object`). Only each image's top-scoring detection is used."""
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions but {len(targets)} targets")
    if not preds:
        raise ValueError("localization_metrics needs at least one image")
    correct, ious = 0, []
    for p, t in zip(preds, targets, strict=True):
        k = pick_object(t, rule)
        best = int(p.scores.argmax()) if len(p) else None
        if k is None:
            correct += best is None
            continue
        if best is None:
            ious.append(0.0)
            continue
        correct += int(p.labels[best]) == int(t.labels[k])
        ious.append(float(box_iou(p.boxes[best : best + 1].float(), t.boxes[k : k + 1].float())[0, 0]))
    mean_iou = sum(ious) / len(ious) if ious else float("nan")
    return LocalizationMetrics(accuracy=correct / len(preds), mean_iou=mean_iou)


# ---- the module ---------------------------------------------------------------------------------


def _fc(c_in: int, hidden: int) -> list[nn.Module]:
    return [nn.Linear(c_in, hidden), nn.ReLU(inplace=True)] if hidden else []


class _AveragePool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)


@register_detector("localization", LocalizationConfig)
class LocalizationDetector(Detector):
    """Backbone -> the last map flattened (or averaged) -> (FC) -> class head ``(C + 1)`` and box
    head ``(4)``."""

    config: LocalizationConfig

    def __init__(self, num_classes: int, config: LocalizationConfig) -> None:
        super().__init__(num_classes, config)  # the backbone's default levels; only the deepest is used
        c = self.backbone.out_channels
        self.pool: nn.Module = _AveragePool()
        self.cls_pool: nn.Module | None = None  # "split": the class head reads the averaged map
        if config.pool != "average":
            h, w = config.image_size[0] // 32, config.image_size[1] // 32
            self.pool = nn.Sequential(nn.Conv2d(c, config.reduce, 1), nn.ReLU(inplace=True), nn.Flatten())
            if config.pool == "split":
                self.cls_pool = nn.Sequential(_AveragePool(), *_fc(c, config.hidden))
            c = config.reduce * h * w
        self.neck = nn.Sequential(*_fc(c, config.hidden))
        width = config.hidden or c
        self.cls_head = nn.Linear(config.hidden or self.backbone.out_channels if self.cls_pool else width, num_classes + 1)
        self.box_head = nn.Linear(width, 4)

    def predict(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, 3, H, W)`` -> logits ``(B, C+1)`` and normalised boxes ``(B, 4)`` cxcywh in [0, 1]."""
        feat = self.backbone(images)[-1]  # (B, C_feat, H/32, W/32)
        x = self.neck(self.pool(feat))  # (B, reduce * H/32 * W/32) or (B, C_feat) -> (B, hidden)
        x_cls = x if self.cls_pool is None else self.cls_pool(feat)  # (B, hidden)
        return self.cls_head(x_cls), self.box_head(x).sigmoid()

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        threshold = (postprocess or self.postprocess).score_threshold  # one box per image: no NMS, no top-k
        logits, boxes = self.predict(images)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            labels, box_t, has_obj = encode_localization_targets(
                targets, self.num_classes, self.image_size, self.config.target_object)
            dev = images.device
            losses = localization_loss(logits, boxes, labels.to(dev), box_t.to(dev), has_obj.to(dev),
                                       self.config.box_weight)
        detections: list[Detections] = []
        if not self.training:
            label, score, xyxy, is_obj = decode_localization(logits.detach(), boxes.detach(), self.image_size)
            for i in range(images.shape[0]):
                keep = is_obj[i] & (score[i] > threshold)
                det = Detections(xyxy[i : i + 1], score[i : i + 1], label[i : i + 1])
                detections.append(det if keep else Detections.empty(images.device))
        return DetectorOutput(detections=detections, losses=losses)
