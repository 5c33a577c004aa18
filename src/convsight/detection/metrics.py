"""The one evaluator for every detector: COCO mAP@[.5:.95] and Pascal VOC mAP@0.5.

COCO metrics follow pycocotools' ``COCOeval`` step for step (per image and class: detections sorted by
score and cut to ``max_dets``, greedy matching to the best still-unmatched ground truth, 101-point
interpolated precision), so the numbers equal it to within 1e-4 (a test checks this on randomized
sets); pycocotools itself stays the independent reference and is not called here. VOC mAP@0.5 is the
2010+ all-point AP (area under the monotone precision envelope) with VOC's own matching rule.

Undefined values (a class without ground truth) are NaN and left out of the means, as COCOeval's -1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import Tensor

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.linspace(0.5, 0.95, 10))
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
# COCO's area ranges, on box area in pixels.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10),
}


class BoxSet(Protocol):
    """Anything with ``boxes`` ``(N, 4)`` xyxy and ``labels`` ``(N,)`` (ground truth or detections)."""

    boxes: Tensor
    labels: Tensor


@dataclass(frozen=True)
class ClassAP:
    """One class's results; NaN where the class has no ground truth."""

    ap: float  # AP@[.5:.95], COCO 101-point
    ap50: float  # AP@0.5, COCO 101-point
    voc_ap50: float  # AP@0.5, VOC all-point
    num_gt: int
    num_det: int


@dataclass(frozen=True)
class DetectionMetrics:
    """Evaluation results. ``pr_curves[name] = (recall, precision)`` at IoU 0.5 (VOC matching)."""

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

    def to_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 6)

        overall = {k: clean(getattr(self, k)) for k in
                   ("map", "map50", "map75", "map_small", "map_medium", "map_large", "voc_map50")}
        per_class = {n: {"ap": clean(c.ap), "ap50": clean(c.ap50), "voc_ap50": clean(c.voc_ap50),
                         "num_gt": c.num_gt, "num_det": c.num_det} for n, c in self.per_class.items()}
        return {**overall, "num_images": self.num_images, "per_class": per_class}


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)`` (no +1 pixel, as COCO; 0 for empty unions)."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match_coco(ious: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching for one image and class, all IoU thresholds at once.

    ious: ``(D, G)`` with detections sorted by score; gt_ignore: ``(G,)``.
    Returns ``matched (T, D)`` and ``ignored (T, D)`` (matched to an ignored ground truth).
    """
    T, (D, G) = len(thresholds), ious.shape
    matched = np.zeros((T, D), bool)
    ignored = np.zeros((T, D), bool)
    if D == 0 or G == 0:
        return matched, ignored
    thr = np.minimum(thresholds, 1 - 1e-10)[:, None]  # (T, 1)
    gt_taken = np.zeros((T, G), bool)  # each threshold runs its own greedy pass
    rows = np.arange(T)
    for d in range(D):
        ok = (ious[d] >= thr) & ~gt_taken  # (T, G)
        if not ok.any():
            continue
        # Prefer real ground truth; an ignored one only when no real one qualifies.
        real = ok & ~gt_ignore
        pool = np.where(real.any(1, keepdims=True), real, ok & gt_ignore)
        hit = pool.any(1)
        # COCOeval replaces its candidate on equal IoU, so among ties the last ground truth wins.
        m = G - 1 - np.argmax(np.where(pool, ious[d], -1.0)[:, ::-1], axis=1)  # (T,)
        gt_taken[rows[hit], m[hit]] = True
        matched[hit, d] = True
        ignored[hit, d] = gt_ignore[m[hit]]
    return matched, ignored


def _precision_101(scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: int) -> np.ndarray:
    """COCOeval.accumulate for one class and area: interpolated precision ``(T, 101)``."""
    order = np.argsort(-scores, kind="mergesort")
    tps = (matched & ~ignored)[:, order]
    fps = (~matched & ~ignored)[:, order]
    tp, fp = np.cumsum(tps, 1, dtype=np.float64), np.cumsum(fps, 1, dtype=np.float64)
    out = np.zeros((matched.shape[0], len(RECALL_POINTS)))
    for t in range(matched.shape[0]):
        rc = tp[t] / num_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # monotone from the right
        idx = np.searchsorted(rc, RECALL_POINTS, side="left")
        valid = idx < len(pr)
        out[t, : valid.sum()] = pr[idx[valid]]  # idx is non-decreasing, so the valid ones come first
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ all-point AP: area under the precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _voc_class(dets: list[tuple[np.ndarray, np.ndarray]], gts: list[np.ndarray], iou: float = 0.5) -> tuple[float, np.ndarray, np.ndarray]:
    """VOC matching for one class over all images: dets[i] = (boxes, scores), gts[i] = boxes."""
    num_gt = sum(len(g) for g in gts)
    img = np.concatenate([np.zeros(0)] + [np.full(len(s), i) for i, (_, s) in enumerate(dets)]).astype(int)
    boxes = np.concatenate([np.zeros((0, 4))] + [b for b, _ in dets]).reshape(-1, 4)
    scores = np.concatenate([np.zeros(0)] + [s for _, s in dets])
    order = np.argsort(-scores, kind="mergesort")
    taken = [np.zeros(len(g), bool) for g in gts]
    tp = np.zeros(len(order))
    for k, d in enumerate(order):
        g = gts[img[d]]
        if len(g) == 0:
            continue
        ov = box_iou_np(boxes[d : d + 1], g)[0]
        j = int(np.argmax(ov))
        if ov[j] > iou and not taken[img[d]][j]:  # VOC: the best-overlapping gt, even if already taken
            taken[img[d]][j] = True
            tp[k] = 1.0
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = ctp / max(num_gt, 1)
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    return (voc_ap(recall, precision) if num_gt else math.nan), recall, precision


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def _nanmean(values: Sequence[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def evaluate_detections(
    predictions: Sequence[Any],
    targets: Sequence[BoxSet],
    num_classes: int,
    class_names: Sequence[str] | None = None,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
    max_dets: int = 100,
) -> DetectionMetrics:
    """Score per-image predictions (``.boxes``, ``.scores``, ``.labels``) against per-image targets.

    ``predictions[i]`` and ``targets[i]`` describe the same image; images without ground truth count
    (their detections are false positives).
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction sets for {len(targets)} images")
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    thr = np.asarray(iou_thresholds, dtype=np.float64)
    gt_b = [_numpy(t.boxes).reshape(-1, 4) for t in targets]
    gt_l = [t.labels.detach().cpu().numpy().reshape(-1) for t in targets]
    dt_b = [_numpy(p.boxes).reshape(-1, 4) for p in predictions]
    dt_s = [_numpy(p.scores).reshape(-1) for p in predictions]
    dt_l = [p.labels.detach().cpu().numpy().reshape(-1) for p in predictions]
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731

    precision = {a: np.full((len(thr), len(RECALL_POINTS), num_classes), -1.0) for a in AREA_RANGES}
    per_class: dict[str, ClassAP] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(num_classes):
        acc = {a: ([], [], [], 0) for a in AREA_RANGES}  # scores, matched, ignored, num_gt per area
        voc_dets, voc_gts = [], []
        num_det = 0
        for i in range(len(targets)):
            g = gt_b[i][gt_l[i] == k]
            sel = np.nonzero(dt_l[i] == k)[0]
            voc_dets.append((dt_b[i][sel], dt_s[i][sel]))
            voc_gts.append(g)
            num_det += len(sel)
            if len(g) == 0 and len(sel) == 0:
                continue
            sel = sel[np.argsort(-dt_s[i][sel], kind="mergesort")][:max_dets]
            d, s = dt_b[i][sel], dt_s[i][sel]
            ious = box_iou_np(d, g)
            g_area, d_area = area(g), area(d)
            for a, (lo, hi) in AREA_RANGES.items():
                g_ign = (g_area < lo) | (g_area > hi)
                m, ign = _match_coco(ious, g_ign, thr)
                ign |= ~m & ((d_area < lo) | (d_area > hi))[None, :]  # unmatched and outside the range
                sc, mt, ig, n = acc[a]
                acc[a] = (sc + [s], mt + [m], ig + [ign], n + int((~g_ign).sum()))
        for a in AREA_RANGES:
            sc, mt, ig, n = acc[a]
            if n == 0:
                continue
            precision[a][:, :, k] = _precision_101(
                np.concatenate(sc) if sc else np.zeros(0),
                np.concatenate(mt, 1) if mt else np.zeros((len(thr), 0), bool),
                np.concatenate(ig, 1) if ig else np.zeros((len(thr), 0), bool), n)
        voc, rec, prec = _voc_class(voc_dets, voc_gts)
        curves[names[k]] = (rec, prec)
        p = precision["all"][:, :, k]
        has_gt = bool((p > -1).any())
        t50 = np.nonzero(np.isclose(thr, 0.5))[0]
        per_class[names[k]] = ClassAP(
            ap=float(p.mean()) if has_gt else math.nan,
            ap50=float(p[t50[0]].mean()) if has_gt and len(t50) else math.nan,
            voc_ap50=voc, num_gt=sum(len(g) for g in voc_gts), num_det=num_det)

    def summarize(a: str, t: float | None = None) -> float:
        p = precision[a]
        if t is not None:
            idx = np.nonzero(np.isclose(thr, t))[0]
            if not len(idx):
                return math.nan
            p = p[idx]
        v = p[p > -1]
        return float(v.mean()) if v.size else math.nan

    return DetectionMetrics(
        map=summarize("all"), map50=summarize("all", 0.5), map75=summarize("all", 0.75),
        map_small=summarize("small"), map_medium=summarize("medium"), map_large=summarize("large"),
        voc_map50=_nanmean([c.voc_ap50 for c in per_class.values()]),
        per_class=per_class, num_images=len(targets), pr_curves=curves,
    )
