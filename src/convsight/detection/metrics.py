"""The one evaluator for every detector: the twelve COCO numbers and Pascal VOC mAP@0.5.

COCO (``map`` ... ``mar_large``): pycocotools' ``COCOeval`` bbox rules exactly, computed by
faster-coco-eval's C++ core (see :mod:`convsight.detection.coco_eval`). Crowd regions are ignore
regions (IoU over the detection's area, any number of matches, no recall); ``area`` from the file
decides small/medium/large. COCO's ``ignore`` key does *not* change these twelve numbers: pycocotools'
``COCOeval._prepare`` overwrites ``gt["ignore"]`` with ``iscrowd`` (faster-coco-eval does the same),
so an ``ignore``-marked box without ``iscrowd`` is scored as an ordinary object, and so it is here.
VOC AP below and training (``DetectionDataset``) do treat ``ignore`` boxes as ignore regions.
Per-class AP comes from the same arrays.

VOC (``voc_map50``, ``voc07_map50``, the PR curves): convsight's own code, the devkit's rule
(``VOCevaldet.m`` of the VOC2012 devkit; py-faster-rcnn's ``voc_eval.py`` is the Python copy):
detections sorted by score, each assigned to the ground truth it overlaps most in its image; with
IoU >= 0.5 it is a true positive if that object is still unclaimed, a false positive if already
claimed, and *neither* if the object is ``difficult`` (unless ``use_difficult``) or a crowd /
``ignore`` region. Difficult objects do not count in the number of positives. AP is the VOC2010+
all-point area under the precision envelope; ``voc07_map50`` is VOC2007's 11-point AP. IoU is on
continuous xyxy boxes (no devkit ``+1`` pixel), the same boxes COCO scores.

Undefined values (a class without ground truth) are NaN and left out of the means, as COCOeval's -1.
A ground-floor module: it imports no convsight module but its sibling ``coco_eval``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from convsight.detection.coco_eval import (
    AREA_RANGES,
    COCO_IOU_THRESHOLDS,
    STATS,
    BoxArrays,
    coco_evaluate,
)

__all__ = ["AREA_RANGES", "COCO_IOU_THRESHOLDS", "BoxArrays", "ClassAP", "DetectionMetrics", "box_iou_np",
           "evaluate_arrays", "evaluate_detections", "ground_truth_arrays", "voc07_ap", "voc_ap"]

COCO_STAT_NAMES: tuple[str, ...] = tuple(s[0] for s in STATS)
METRIC_NAMES: tuple[str, ...] = (*COCO_STAT_NAMES, "voc_map50", "voc07_map50")
VOC_IOU = 0.5


class BoxSet(Protocol):
    """Anything with ``boxes`` ``(N, 4)`` xyxy and ``labels`` ``(N,)``. Ground truth may also carry
    ``crowd``/``ignore``/``difficult`` ``(N,)`` bool and ``areas`` ``(N,)`` (as ``ImageAnnotation``)."""

    boxes: Tensor
    labels: Tensor


@dataclass(frozen=True)
class ClassAP:
    """One class's results; NaN where the class has no ground truth.

    num_gt: objects that count (not crowd / ``ignore``); num_det: detections of the class.
    """

    ap: float  # AP@[.5:.95], COCO 101-point
    ap50: float  # AP@0.5, COCO 101-point
    voc_ap50: float  # AP@0.5, VOC all-point
    num_gt: int
    num_det: int
    voc07_ap50: float = math.nan  # AP@0.5, VOC2007 11-point


@dataclass(frozen=True)
class DetectionMetrics:
    """Evaluation results: COCO's twelve stats (AP and AR by IoU, area and maxDets), VOC mAP@0.5
    (all-point and 11-point), per class. ``pr_curves[name] = (recall, precision)`` at IoU 0.5 (VOC
    matching, ignored detections left out)."""

    map: float
    map50: float
    map75: float
    map_small: float
    map_medium: float
    map_large: float
    voc_map50: float
    per_class: dict[str, ClassAP]
    num_images: int
    pr_curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=dict)
    mar1: float = math.nan
    mar10: float = math.nan
    mar100: float = math.nan
    mar_small: float = math.nan
    mar_medium: float = math.nan
    mar_large: float = math.nan
    voc07_map50: float = math.nan
    use_difficult: bool = False

    def to_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 6)

        overall = {k: clean(getattr(self, k)) for k in METRIC_NAMES}
        per_class = {n: {"ap": clean(c.ap), "ap50": clean(c.ap50), "voc_ap50": clean(c.voc_ap50),
                         "voc07_ap50": clean(c.voc07_ap50), "num_gt": c.num_gt, "num_det": c.num_det}
                     for n, c in self.per_class.items()}
        return {**overall, "use_difficult": self.use_difficult, "num_images": self.num_images, "per_class": per_class}


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)`` (no +1 pixel, as COCO; 0 for empty unions)."""
    return _pair_iou(np.repeat(a, len(b), 0), np.tile(b, (len(a), 1))).reshape(len(a), len(b))


def _pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row-aligned ``(P, 4)`` box pairs -> ``(P,)``."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ all-point AP: area under the precision envelope (devkit ``VOCap.m``)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP: the mean over t = 0, 0.1, ..., 1 of the best precision at recall >= t."""
    ap = 0.0
    for t in np.linspace(0.0, 1.0, 11):
        hit = recall >= t
        ap += (float(precision[hit].max()) if hit.any() else 0.0) / 11
    return ap


def _voc(gt: BoxArrays, gt_skip: np.ndarray, dt: BoxArrays, num_classes: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The devkit's matching for every class at once, vectorised.

    gt_skip: ``(G,)`` bool, ground truth whose detections are "don't care" (difficult / crowd / ignore).
    Returns per class all-point AP, 11-point AP (NaN without positives) and (recall, precision).
    """
    # Every (detection, ground truth) pair of the same image and class, detections contiguous.
    key_g = gt.image.astype(np.int64) * num_classes + gt.labels
    g_order = np.argsort(key_g, kind="mergesort")  # stable: file order within an (image, class)
    sorted_keys = key_g[g_order]
    key_d = dt.image.astype(np.int64) * num_classes + dt.labels
    lo, hi = np.searchsorted(sorted_keys, key_d, "left"), np.searchsorted(sorted_keys, key_d, "right")
    counts = hi - lo
    pair_d = np.repeat(np.arange(len(dt)), counts)
    offset = np.arange(len(pair_d)) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_g = g_order[np.repeat(lo, counts) + offset]
    iou = _pair_iou(dt.boxes[pair_d], gt.boxes[pair_g])
    # Per detection: the best overlap and the first ground truth reaching it (devkit: ``ov > ovmax``).
    best = np.full(len(dt), -1.0)
    np.maximum.at(best, pair_d, iou)
    at_best = iou == best[pair_d]
    first = np.full(len(dt), len(pair_g))
    np.minimum.at(first, pair_d[at_best], np.nonzero(at_best)[0])
    hit = best >= VOC_IOU  # -1 where the image has no ground truth of the class
    gt_of = np.full(len(dt), -1)
    gt_of[hit] = pair_g[first[hit]]
    dont_care = np.zeros(len(dt), bool)
    dont_care[hit] = gt_skip[gt_of[hit]]
    order = np.argsort(-dt.scores, kind="mergesort")  # stable, as MATLAB's sort
    tp = np.zeros(len(dt), bool)
    claim = order[hit[order] & ~dont_care[order]]
    _, first_claim = np.unique(gt_of[claim], return_index=True)  # the best-scored detection claims it
    tp[claim[first_claim]] = True
    npos = np.bincount(gt.labels[~gt_skip], minlength=num_classes)
    aps, aps07, curves = np.full(num_classes, math.nan), np.full(num_classes, math.nan), []
    labels_sorted = dt.labels[order]
    for k in range(num_classes):
        sel = order[(labels_sorted == k) & ~dont_care[order]]
        ctp = np.cumsum(tp[sel], dtype=np.float64)
        cfp = np.arange(1, len(sel) + 1, dtype=np.float64) - ctp
        rec = ctp / max(npos[k], 1)
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        curves.append((rec, prec))
        if npos[k]:
            aps[k], aps07[k] = voc_ap(rec, prec), voc07_ap(rec, prec)
    return aps, aps07, curves


def _cat(items: Sequence[Any], name: str, shape: tuple[int, ...], counts: list[int], fill: float | bool) -> np.ndarray:
    """``getattr(item, name)`` of every item, concatenated (``fill`` for items without it)."""
    parts = [getattr(t, name, None) for t in items]
    parts = [torch.full((n, *shape), fill) if v is None else v.detach().cpu().reshape(n, *shape) if v.requires_grad
             else v.cpu().reshape(n, *shape)
             for v, n in zip(parts, counts, strict=True)]
    if not parts:
        return np.zeros((0, *shape))
    return torch.cat([v.double() if v.is_floating_point() else v for v in parts]).numpy()


def _gather(items: Sequence[Any], gt: bool) -> tuple[BoxArrays, np.ndarray]:
    """Concatenate per-image boxes into :class:`BoxArrays`; for ground truth also the
    ``(G, 3)`` bool flags crowd, ignore, difficult."""
    counts = [int(t.labels.shape[0]) for t in items]
    image = np.repeat(np.arange(len(items)), counts)
    boxes = _cat(items, "boxes", (4,), counts, 0.0).astype(np.float64)
    labels = _cat(items, "labels", (), counts, 0).astype(np.int64)
    if not gt:
        scores = _cat(items, "scores", (), counts, 0.0).astype(np.float64)
        return BoxArrays(image, boxes, labels, scores=scores), np.zeros((len(labels), 0), bool)
    flags = np.stack([_cat(items, f, (), counts, False).astype(bool) for f in ("crowd", "ignore", "difficult")], 1)
    areas = _cat(items, "areas", (), counts, math.nan).astype(np.float64)
    return BoxArrays(image, boxes, labels, crowd=flags[:, 0], areas=areas), flags.reshape(-1, 3)


def evaluate_detections(
    predictions: Sequence[Any],
    targets: Sequence[BoxSet],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    max_dets: int = 100,
    use_difficult: bool = False,
) -> DetectionMetrics:
    """Score per-image predictions (``.boxes``, ``.scores``, ``.labels``) against per-image targets.

    ``predictions[i]`` and ``targets[i]`` describe the same image; images without ground truth count
    (their detections are false positives). max_dets: detections per image and class for AP and the
    last AR (COCO: 100). use_difficult: count VOC ``difficult`` objects in VOC AP (the devkit and
    torchvision ignore them; COCO's numbers never look at the flag).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction sets for {len(targets)} images")
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    gt, flags = ground_truth_arrays(targets)
    dt, _ = _gather(predictions, gt=False)
    return evaluate_arrays(gt, flags, dt, len(targets), names, iou_thresholds, max_dets, use_difficult)


def ground_truth_arrays(targets: Sequence[BoxSet]) -> tuple[BoxArrays, np.ndarray]:
    """Per-image ground truth as :class:`BoxArrays` plus ``(G, 3)`` bool flags crowd, ignore, difficult."""
    return _gather(targets, gt=True)


def evaluate_arrays(gt: BoxArrays, flags: np.ndarray, dt: BoxArrays, num_images: int, class_names: Sequence[str],
                    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS, max_dets: int = 100,
                    use_difficult: bool = False) -> DetectionMetrics:
    """:func:`evaluate_detections` on whole-set arrays (``flags`` from :func:`ground_truth_arrays`;
    ``dt`` with scores): what ``convsight detect score`` uses, with no object per image."""
    num_classes = len(class_names)
    flags = flags[(gt.labels >= 0) & (gt.labels < num_classes)]
    gt, dt = _in_range(gt, num_classes), _in_range(dt, num_classes)
    coco = coco_evaluate(gt, dt, num_images, num_classes, tuple(iou_thresholds), max_dets)
    skip = flags[:, 0] | flags[:, 1] | (flags[:, 2] & (not use_difficult))
    voc, voc07, curves = _voc(gt, skip, dt, num_classes)
    num_gt = np.bincount(gt.labels[~(flags[:, 0] | flags[:, 1])], minlength=num_classes)
    num_det = np.bincount(dt.labels, minlength=num_classes)
    t50 = np.nonzero(np.isclose(coco.iou_thresholds, 0.5))[0]
    per_class: dict[str, ClassAP] = {}
    for k, name in enumerate(class_names):
        p = coco.precision[:, :, k, 0, -1]  # area "all", the last maxDets
        has_gt = bool((p > -1).any())
        per_class[name] = ClassAP(
            ap=float(p[p > -1].mean()) if has_gt else math.nan,
            ap50=float(p[t50[0]].mean()) if has_gt and len(t50) else math.nan,
            voc_ap50=float(voc[k]), voc07_ap50=float(voc07[k]), num_gt=int(num_gt[k]), num_det=int(num_det[k]))
    return DetectionMetrics(
        **coco.stats, voc_map50=_nanmean(voc), voc07_map50=_nanmean(voc07), use_difficult=use_difficult,
        per_class=per_class, num_images=num_images, pr_curves=dict(zip(class_names, curves, strict=True)),
    )


def _in_range(a: BoxArrays, num_classes: int) -> BoxArrays:
    """``a`` without rows whose label is not a class (a detector's stray label would otherwise alias
    another image's class in the (image, class) keys)."""
    ok = (a.labels >= 0) & (a.labels < num_classes)
    if ok.all():
        return a
    pick = lambda v: None if v is None else v[ok]
    return BoxArrays(a.image[ok], a.boxes[ok], a.labels[ok], pick(a.scores), pick(a.crowd), pick(a.areas))


def _nanmean(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(v.mean()) if v.size else math.nan
