"""YOLO: one pass of a conv net predicts, for every cell of an S x S grid, B boxes with objectness.

As in the lecture (Andrew Ng's CNN course) and YOLOv1: an object belongs to the grid cell that holds
its centre. Each predictor (cell, box slot) outputs ``[obj, x, y, w, h]``: ``x, y = sigmoid(t)`` are
the centre's offsets inside the cell in ``[0, 1]``; ``w, h`` are fractions of the image, either
``sigmoid(t)`` (no anchors) or ``exp(t) * anchor`` (YOLOv2 priors). Class scores come per box
(``layout="per_box"``: ``B x (5 + C)`` numbers a cell, the lecture's ``y`` vector) or once per cell
(``layout="shared"``: ``B x 5 + C``, YOLOv1). Detection score = ``sigmoid(obj) x softmax(class)``.

Target assignment (:func:`encode_targets`): objects are visited in the order given; each takes the
first FREE slot of its centre's cell in its order of preference (anchors: by anchor-shape IoU, best
first; no anchors: slot 0, 1, ...). A cell holds at most ``B`` objects (``"shared"``: 1, it has one
class vector); a later object that finds its cell full is dropped (counted in ``"dropped"``).

Which predictor is *responsible* for a gt (:func:`assign_responsible`): with anchors, the slot it
was encoded into (best anchor shape); without anchors, the predictor of the cell whose current box
has the highest IoU with the gt (YOLOv1), chosen greedily when a cell holds several gts.

Losses, summed over predictors and averaged over images (:func:`yolo_loss`):

- ``"lecture"``: objectness by BCE (target 1 for responsible predictors, 0 elsewhere, the latter
  weighted by ``lambda_noobj``); squared error of ``(x, y, w, h)`` (weighted by ``lambda_coord``) and
  of the softmax class probabilities against the one-hot label, for responsible predictors only.
- ``"yolov1"``: sum-squared error throughout: ``lambda_coord`` on ``x, y, sqrt(w), sqrt(h)``;
  confidence ``sigmoid(obj)`` against the IoU of the predicted box with its gt (responsible) and
  against 0 weighted by ``lambda_noobj`` (others); class SSE in cells with objects. (The paper
  regresses raw numbers; we squash through sigmoid/softmax so decoding always yields probabilities.)

With anchor priors both losses measure the size error on the learnt offsets ``log(w / anchor)``
(YOLOv2) instead of on ``w`` or ``sqrt(w)``. Set ``lambda_coord = lambda_noobj = 1`` for the
lecture's unweighted sum.

Scales: ``scales`` are backbone strides, one grid per stride (e.g. ``(16, 32)``). Without anchors an
object goes to the scale whose stride is closest (in log) to a quarter of its size ``sqrt(w h)``;
with anchors, the anchors (fractions of the image) are sorted by area and split evenly over the
scales, smallest to the finest grid, and an object goes to the scale of its best-shaped anchor.
"""

from __future__ import annotations

import math
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
from convsight.structures import DetectorOutput, Target

LAYOUTS = ("per_box", "shared")
LOSSES = ("lecture", "yolov1")
HEADS = ("conv", "separable")
_CELLS_PER_OBJECT = 4.0  # without anchors an object of size ~4 strides is "at home" on that grid
_OBJ_PRIOR = 0.05  # initial objectness, so the many empty cells do not swamp the first steps
_MAX_LOG_SCALE = 4.0  # clamp of t_w, t_h before exp (anchor x e^4 is already far beyond the image)


@dataclass(frozen=True, kw_only=True)
class YoloConfig(DetectorConfig):
    """boxes_per_cell: ``B`` without anchors (with anchors ``B = len(anchors) / len(scales)``);
    layout: ``"per_box"`` or ``"shared"``; loss: ``"lecture"`` or ``"yolov1"``; anchors: ``(w, h)``
    priors as fractions of the image, or ``None``; scales: backbone strides, one grid each (grid =
    image side / stride, e.g. 7 x 7 for 224 px at stride 32); head: ``"conv"`` (two full 3x3 conv
    layers per scale) or ``"separable"`` (each 3x3 conv split into a depthwise 3x3 and a pointwise
    1x1, MobileNet / SSDLite style: the same receptive field for a fraction of the multiply-adds);
    head_channels: width of the head's two layers; lambda_coord, lambda_noobj: YOLOv1's weights
    (used by both losses); input_sides: None or the ``(lo, hi)`` input sides it runs at, anchors
    kept at their pixels at ``image_size`` (:mod:`convsight.detection.input_sides`)."""

    image_size: tuple[int, int] = (224, 224)
    postprocess: PostprocessConfig = field(
        default_factory=lambda: PostprocessConfig(score_threshold=0.2, iou_threshold=0.45, topk=100))
    boxes_per_cell: int = 2
    layout: str = "per_box"
    loss: str = "lecture"
    anchors: tuple[tuple[float, float], ...] | None = None
    scales: tuple[int, ...] = (32,)
    head: str = "conv"
    head_channels: int = 128
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    input_sides: tuple[int, int] | None = None

    def validate(self) -> None:
        self.check_choices(layout=LAYOUTS, loss=LOSSES, head=HEADS)
        check_input_sides(self.arch, self.input_sides)
        if self.boxes_per_cell < 1 or self.head_channels < 1:
            raise self.error("boxes_per_cell and head_channels must be >= 1")
        if not self.scales or list(self.scales) != sorted(set(self.scales)):
            raise self.error(f"scales must be distinct strides in increasing order, got {self.scales}")
        for stride in self.scales:
            self.check_divisible(stride, "the stride of a scale")
        if self.anchors is not None:
            if not self.anchors or len(self.anchors) % len(self.scales):
                raise self.error(f"need a multiple of {len(self.scales)} anchors (one set per scale), "
                                 f"got {len(self.anchors)}")
            if any(len(a) != 2 or not 0 < a[0] <= 1 or not 0 < a[1] <= 1 for a in self.anchors):
                raise self.error(f"anchors are (w, h) fractions of the image in (0, 1], got {self.anchors}")
        if self.lambda_coord < 0 or self.lambda_noobj < 0:
            raise self.error("lambda_coord and lambda_noobj must be >= 0")

    @property
    def num_boxes(self) -> int:
        """Predictors per cell ``B``."""
        return len(self.anchors) // len(self.scales) if self.anchors is not None else self.boxes_per_cell

    def grid_sizes(self) -> list[tuple[int, int]]:
        return [(self.image_size[0] // s, self.image_size[1] // s) for s in self.scales]

    def anchors_per_scale(self) -> list[Tensor | None]:
        """Per scale ``(B, 2)`` anchor ``(w, h)`` fractions (smallest anchors on the finest grid)."""
        if self.anchors is None:
            return [None] * len(self.scales)
        a = sorted(self.anchors, key=lambda wh: wh[0] * wh[1])
        b = self.num_boxes
        return [torch.tensor(a[i * b:(i + 1) * b], dtype=torch.float32) for i in range(len(self.scales))]


# ---- pure maths ---------------------------------------------------------------------------------


def shape_iou(wh: Tensor, anchors: Tensor) -> Tensor:
    """IoU ``(G, A)`` of sizes ``wh (G, 2)`` and ``anchors (A, 2)`` as if both were centred together."""
    inter = torch.minimum(wh[:, None, 0], anchors[None, :, 0]) * torch.minimum(wh[:, None, 1], anchors[None, :, 1])
    return inter / (wh.prod(1)[:, None] + anchors.prod(1)[None, :] - inter).clamp(min=1e-12)


def assign_scales(boxes: Tensor, image_size: tuple[int, int], strides: tuple[int, ...],
                  anchors: list[Tensor | None]) -> Tensor:
    """Scale index ``(G,)`` of each xyxy pixel box ``(G, 4)`` (see the module docstring)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)  # (G, 2) pixels
    if len(strides) == 1:
        return torch.zeros(len(boxes), dtype=torch.int64)
    if anchors[0] is not None:
        frac = wh / torch.tensor([image_size[1], image_size[0]], dtype=wh.dtype)
        best = shape_iou(frac, torch.cat(anchors)).argmax(1)  # (G,) over all anchors, scale-major
        return best // anchors[0].shape[0]
    size = wh.prod(1).sqrt()  # (G,)
    gap = (size[:, None] / (_CELLS_PER_OBJECT * torch.tensor(strides, dtype=wh.dtype))[None, :]).log().abs()
    return gap.argmin(1)


def encode_targets(
    targets: list[Target], grid_hw: tuple[int, int], image_size: tuple[int, int], num_classes: int,
    boxes_per_cell: int = 2, anchors: Tensor | None = None, max_per_cell: int | None = None,
    keep: list[Tensor] | None = None,
) -> dict[str, Tensor]:
    """Ground truth -> per-slot targets of one grid (``Gh, Gw``) with ``boxes_per_cell = nb`` slots.

    Returns ``mask (B, Gh, Gw, nb)`` bool (slot holds an object), ``box (B, Gh, Gw, nb, 4)`` YOLO
    coordinates ``(x, y)`` offsets in the cell in ``[0, 1]`` and ``(w, h)`` fractions of the image,
    ``xyxy (..., 4)`` the gt in pixels, ``labels (B, Gh, Gw, nb)`` (-1: empty), ``onehot (..., C)``
    and ``dropped`` (objects lost to full cells). ``keep``: per image a ``(G,)`` bool of the objects
    that belong to this grid (default all); ``max_per_cell`` defaults to ``nb``.
    """
    gh, gw = grid_hw
    h, w = image_size
    nb, n = boxes_per_cell, len(targets)
    cap = nb if max_per_cell is None else min(max_per_cell, nb)
    mask = torch.zeros(n, gh, gw, nb, dtype=torch.bool)
    box, xyxy = torch.zeros(n, gh, gw, nb, 4), torch.zeros(n, gh, gw, nb, 4)
    labels = torch.full((n, gh, gw, nb), -1, dtype=torch.int64)
    dropped = 0
    for i, t in enumerate(targets):
        if len(t) and (t.labels.min() < 0 or t.labels.max() >= num_classes):
            raise ValueError(f"yolo: labels must be in [0, {num_classes}), got {t.labels.tolist()}")
        b = t.boxes.detach().float().cpu()  # (G, 4)
        cx, cy = (b[:, 0] + b[:, 2]) / 2 / w * gw, (b[:, 1] + b[:, 3]) / 2 / h * gh  # (G,) in cell units
        col = cx.floor().long().clamp(0, gw - 1)  # a centre on the right/bottom edge stays inside
        row = cy.floor().long().clamp(0, gh - 1)
        bw, bh = (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h
        if anchors is not None:
            prefs = shape_iou(torch.stack([bw, bh], 1), anchors).argsort(1, descending=True)  # (G, nb)
        else:
            prefs = torch.arange(nb).expand(len(b), nb)
        for g in range(len(b)):
            if keep is not None and not keep[i][g]:
                continue
            r, c = int(row[g]), int(col[g])
            if int(mask[i, r, c].sum()) >= cap:
                dropped += 1  # the cell is full: an earlier object holds every slot it may use
                continue
            s = next(int(p) for p in prefs[g] if not mask[i, r, c, p])
            mask[i, r, c, s] = True
            box[i, r, c, s] = torch.stack([cx[g] - c, cy[g] - r, bw[g], bh[g]]).clamp(0, 1)
            xyxy[i, r, c, s], labels[i, r, c, s] = b[g], t.labels[g]
    onehot = F.one_hot(labels.clamp(min=0), num_classes).float() * mask[..., None]  # (B, Gh, Gw, nb, C)
    return {"mask": mask, "box": box, "xyxy": xyxy, "labels": labels, "onehot": onehot,
            "dropped": torch.tensor(dropped)}


def split_raw(raw: Tensor, num_boxes: int, num_classes: int, layout: str) -> tuple[Tensor, Tensor, Tensor]:
    """Head output ``raw (B, Gh, Gw, D)`` -> objectness logits ``(B, Gh, Gw, nb)``, box numbers
    ``t (B, Gh, Gw, nb, 4)`` and class logits ``(B, Gh, Gw, nb, C)`` (``per_box``, ``D = nb (5 + C)``)
    or ``(B, Gh, Gw, 1, C)`` (``shared``, ``D = 5 nb + C``)."""
    b, gh, gw, _ = raw.shape
    if layout == "per_box":
        per = raw.reshape(b, gh, gw, num_boxes, 5 + num_classes)
        return per[..., 0], per[..., 1:5], per[..., 5:]
    boxes = raw[..., :5 * num_boxes].reshape(b, gh, gw, num_boxes, 5)
    return boxes[..., 0], boxes[..., 1:5], raw[..., None, 5 * num_boxes:]


def box_from_raw(t: Tensor, anchors: Tensor | None = None) -> Tensor:
    """``t (..., nb, 4)`` -> YOLO coordinates ``(x, y, w, h)``: offsets in the cell, sizes as fractions."""
    xy = t[..., :2].sigmoid()
    if anchors is None:
        wh = t[..., 2:].sigmoid()
    else:
        wh = t[..., 2:].clamp(max=_MAX_LOG_SCALE).exp() * anchors.to(t)  # (..., nb, 2), YOLOv2 priors
    return torch.cat([xy, wh], -1)


def yolo_to_xyxy(box: Tensor, image_size: tuple[int, int]) -> Tensor:
    """YOLO coordinates ``(B, Gh, Gw, nb, 4)`` -> xyxy pixels of the same shape."""
    _, gh, gw, _, _ = box.shape
    h, w = image_size
    rows = torch.arange(gh, device=box.device, dtype=box.dtype).view(1, gh, 1, 1)
    cols = torch.arange(gw, device=box.device, dtype=box.dtype).view(1, 1, gw, 1)
    cx, cy = (cols + box[..., 0]) / gw * w, (rows + box[..., 1]) / gh * h  # (B, Gh, Gw, nb)
    bw, bh = box[..., 2] * w, box[..., 3] * h
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)


def paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of corresponding xyxy boxes ``(..., 4)`` (broadcasting) -> ``(...)``."""
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1) + (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area - inter).clamp(min=1e-9)


def assign_responsible(pred_xyxy: Tensor, enc: dict[str, Tensor], anchors: bool) -> tuple[Tensor, Tensor]:
    """Responsible predictors ``(B, Gh, Gw, nb)`` bool and, per predictor, the slot of its gt.

    With anchors a gt's slot *is* its predictor. Without, gt slot ``j = 0, 1, ...`` in turn takes the
    still-free predictor of its cell whose box ``pred_xyxy (B, Gh, Gw, nb, 4)`` overlaps it most."""
    mask = enc["mask"]
    nb = mask.shape[-1]
    if anchors:
        return mask, torch.arange(nb, device=mask.device).expand_as(mask)
    iou = paired_iou(pred_xyxy.detach()[..., :, None, :], enc["xyxy"][..., None, :, :])  # (B, Gh, Gw, nb_p, nb_g)
    resp, gt_slot = torch.zeros_like(mask), torch.zeros(mask.shape, dtype=torch.int64, device=mask.device)
    for j in range(nb):
        score = iou[..., j].masked_fill(resp, -1.0)  # a predictor answers for one gt at most
        best = score.argmax(-1, keepdim=True)  # (B, Gh, Gw, 1)
        take = F.one_hot(best[..., 0], nb).bool() & mask[..., j:j + 1]  # (B, Gh, Gw, nb)
        resp, gt_slot = resp | take, torch.where(take, torch.full_like(gt_slot, j), gt_slot)
    return resp, gt_slot


def yolo_loss(obj_logit: Tensor, pred_box: Tensor, cls_logit: Tensor, enc: dict[str, Tensor], *,
              image_size: tuple[int, int], kind: str = "lecture", anchors: Tensor | None = None,
              lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> dict[str, Tensor]:
    """``{"obj", "noobj", "box", "cls"}`` of one grid, summed over predictors and divided by the
    batch size. ``obj_logit (B, Gh, Gw, nb)``, ``pred_box (B, Gh, Gw, nb, 4)`` YOLO coordinates,
    ``cls_logit (B, Gh, Gw, nb|1, C)``, ``enc`` from :func:`encode_targets` (same device);
    ``anchors (nb, 2)``: the grid's priors, or None.

    With anchors the net learns offsets from its priors, so the size error is measured on those
    offsets, ``log(w / anchor_w)`` (YOLOv2): a 20 px box off by half its width costs as much as a
    200 px one. (On image fractions, the small box's squared error is 100 times smaller, and small
    objects never learn their size.)"""
    n = obj_logit.shape[0]
    pred_xyxy = yolo_to_xyxy(pred_box, image_size)
    resp, slot = assign_responsible(pred_xyxy, enc, anchors is not None)  # (B, Gh, Gw, nb) each
    r = resp.to(obj_logit.dtype)

    def gather(x: Tensor) -> Tensor:  # per-slot gt -> per-predictor gt, (B, Gh, Gw, nb, K)
        return torch.gather(x, 3, slot[..., None].expand(*slot.shape, x.shape[-1]))

    tgt_box, tgt_xyxy, tgt_onehot = gather(enc["box"]), gather(enc["xyxy"]), gather(enc["onehot"])
    probs = cls_logit.softmax(-1)
    if probs.shape[3] == 1:  # shared layout: one class vector per cell, taught where the cell has a gt
        cls_w, cls_tgt = enc["mask"].any(-1, keepdim=True).to(r), enc["onehot"].sum(3, keepdim=True).clamp(max=1)
    else:
        cls_w, cls_tgt = r, tgt_onehot
    cls = (((probs - cls_tgt) ** 2).sum(-1) * cls_w).sum()
    if kind == "lecture":
        bce = F.binary_cross_entropy_with_logits(obj_logit, r, reduction="none")
        obj, noobj = (bce * r).sum(), lambda_noobj * (bce * (1 - r)).sum()
    else:
        conf = obj_logit.sigmoid()
        iou = paired_iou(pred_xyxy, tgt_xyxy).detach()  # YOLOv1: confidence target = IoU(pred, gt)
        obj, noobj = (((conf - iou) ** 2) * r).sum(), lambda_noobj * ((conf**2) * (1 - r)).sum()
    size_pred, size_tgt = pred_box[..., 2:], tgt_box[..., 2:]
    if anchors is not None:  # offsets from the priors (empty slots' zero targets are masked out below)
        prior = anchors.to(pred_box)
        size_pred, size_tgt = (size_pred.clamp(min=1e-9) / prior).log(), (size_tgt.clamp(min=1e-9) / prior).log()
    elif kind == "yolov1":  # sqrt: big boxes' errors matter less
        size_pred, size_tgt = (size_pred + 1e-9).sqrt(), size_tgt.sqrt()
    box_err = ((pred_box[..., :2] - tgt_box[..., :2]) ** 2).sum(-1) + ((size_pred - size_tgt) ** 2).sum(-1)
    box = lambda_coord * (box_err * r).sum()
    return {"obj": obj / n, "noobj": noobj / n, "box": box / n, "cls": cls / n}


def decode_predictions(raws: list[Tensor], num_classes: int, num_boxes: int, layout: str, image_size: tuple[int, int],
                       anchors: list[Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
    """Head outputs, one ``(B, Gh, Gw, D)`` per scale -> boxes ``(B, N, 4)`` xyxy pixels and scores
    ``(B, N, C)`` = objectness x class probability, ``N = sum Gh Gw nb`` (row, column, slot order)."""
    anchors = anchors or [None] * len(raws)
    all_boxes, all_scores = [], []
    for raw, anc in zip(raws, anchors, strict=True):
        obj, t, cls = split_raw(raw, num_boxes, num_classes, layout)
        xyxy = yolo_to_xyxy(box_from_raw(t, anc), image_size)  # (B, Gh, Gw, nb, 4)
        scores = obj.sigmoid()[..., None] * cls.softmax(-1)  # (B, Gh, Gw, nb, C), shared cls broadcasts
        all_boxes.append(xyxy.flatten(1, 3))  # (B, Gh * Gw * nb, 4)
        all_scores.append(scores.flatten(1, 3))
    return torch.cat(all_boxes, 1), torch.cat(all_scores, 1)


# ---- the detector -------------------------------------------------------------------------------


def _conv_bn(c_in: int, c_out: int, kernel: int, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1)]


def _head(c_in: int, width: int, c_out: int, kind: str = "conv") -> nn.Sequential:
    """Two 3x3 layers then a 1x1 predictor: ``(B, c_in, Gh, Gw) -> (B, c_out, Gh, Gw)``.

    ``"separable"``: each 3x3 conv becomes depthwise 3x3 + pointwise 1x1, about 8x fewer multiply-adds
    at width 128 (at 256 px on the stride-8 grid: 27M instead of 226M, and 226M is more than the
    whole backbone's)."""
    if kind == "conv":
        layers = [*_conv_bn(c_in, width, 3), *_conv_bn(width, width, 3)]
    else:
        layers = [*_conv_bn(c_in, c_in, 3, groups=c_in), *_conv_bn(c_in, width, 1),
                  *_conv_bn(width, width, 3, groups=width), *_conv_bn(width, width, 1)]
    return nn.Sequential(*layers, nn.Conv2d(width, c_out, 1))


@register_detector("yolo", YoloConfig)
class YoloDetector(Detector):
    """Backbone levels at ``config.scales`` -> one conv head per scale -> YOLO grid predictions."""

    config: YoloConfig

    def __init__(self, num_classes: int, config: YoloConfig) -> None:
        super().__init__(num_classes, config)
        nb, c = config.num_boxes, num_classes
        depth = nb * (5 + c) if config.layout == "per_box" else 5 * nb + c
        self.heads = nn.ModuleList(_head(info.channels, config.head_channels, depth, config.head)
                                   for info in self.backbone.feature_info)
        for head in self.heads:  # objectness bias = logit of the prior (columns 0, 5+C, ... or 0, 5, ...)
            step = 5 + c if config.layout == "per_box" else 5
            nn.init.constant_(head[-1].bias[0:nb * step:step], math.log(_OBJ_PRIOR / (1 - _OBJ_PRIOR)))
        self._anchors = config.anchors_per_scale()

    def backbone_levels(self, config: YoloConfig) -> list[int | str]:
        return list(config.scales)

    check_inputs = check_sized_inputs  # with input_sides: any sides that 32 divides

    def anchors_at(self, size: tuple[int, int]) -> list[Tensor | None]:
        """Per scale ``(B, 2)`` anchor fractions of a ``size`` input: the pixels they are at ``image_size``."""
        fy, fx = self.image_size[0] / size[0], self.image_size[1] / size[1]
        return [None if a is None else a * a.new_tensor([fx, fy]) for a in self._anchors]

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        cfg, postprocess = self.config, postprocess or self.postprocess
        size = (int(images.shape[-2]), int(images.shape[-1]))  # image_size, or another with input_sides
        anchors = self.anchors_at(size)
        feats = self.backbone(images)
        raws = [head(f).permute(0, 2, 3, 1) for head, f in zip(self.heads, feats, strict=True)]  # (B, Gh, Gw, D)
        losses: dict[str, Tensor] = {}
        if targets is not None:
            losses = self._losses(raws, targets, size, anchors)
        detections = []
        if not self.training:
            with torch.no_grad():
                boxes, scores = decode_predictions(raws, self.num_classes, cfg.num_boxes, cfg.layout, size, anchors)
            detections = [postprocess(b, s, image_size=size) for b, s in zip(boxes, scores, strict=True)]
        return DetectorOutput(detections, losses)

    def _losses(self, raws: list[Tensor], targets: list[Target], size: tuple[int, int], anchors: list) -> dict[str, Tensor]:
        cfg = self.config  # size: this input's (H, W); anchors: fractions of it, per scale
        scale_of = [assign_scales(t.boxes.detach().float().cpu(), size, cfg.scales, anchors) for t in targets]
        cap = 1 if cfg.layout == "shared" else None
        total: dict[str, Tensor] = {}
        for k, (raw, anc) in enumerate(zip(raws, anchors, strict=True)):
            grid = (raw.shape[1], raw.shape[2])  # (Gh, Gw) of this input
            enc = encode_targets(targets, grid, size, self.num_classes, cfg.num_boxes, anc, cap,
                                 keep=[s == k for s in scale_of])
            enc = {key: v.to(raw.device) for key, v in enc.items()}
            obj, t, cls = split_raw(raw, cfg.num_boxes, self.num_classes, cfg.layout)
            terms = yolo_loss(obj, box_from_raw(t, anc), cls, enc, image_size=size, kind=cfg.loss, anchors=anc,
                              lambda_coord=cfg.lambda_coord, lambda_noobj=cfg.lambda_noobj)
            total = {name: total.get(name, 0) + v for name, v in terms.items()}
        return total
