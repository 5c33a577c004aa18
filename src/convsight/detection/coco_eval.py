"""COCO bbox evaluation with faster-coco-eval as the engine, fed straight from arrays.

faster-coco-eval (https://github.com/MiXaiLL76/faster_coco_eval) is pycocotools' ``COCOeval`` with
the per-image matching and the accumulation in C++; its numbers equal pycocotools' (our tests check
all twelve stats to 1e-6). Measured on a val2017-sized problem (``benchmarks/coco_eval.py``) it is
~7x faster than pycocotools and than convsight's former numpy evaluator, so it is the engine here.
Nothing goes through JSON or through its Python ``COCO``/``COCOeval`` classes: the records its C++
matching reads and the IoU blocks its ``computeIoU`` would make are built here from arrays in one
vectorised pass and handed to the C++ ``COCOevalEvaluateAccumulate`` (its Python layer: ``loadRes``,
indexing, one IoU call per image and class, took about as long as the C++ scoring). This uses
faster-coco-eval below its public API (tested with 1.8); tests compare all twelve stats with
pycocotools itself, so a change there shows.

What the rules are (pycocotools' ``COCOeval`` with ``iouType="bbox"``):

- ``iscrowd=1`` regions are ignore regions: the IoU with a crowd region is intersection over the
  *detection's* area, any number of detections may match one, and those detections, like the region
  itself, count neither for nor against (no recall, no false positive).
- ``area`` (the mask area in COCO files; the box area where absent) decides small/medium/large.
- COCO's ``ignore`` key has *no* effect: ``COCOeval._prepare`` overwrites ``gt["ignore"]`` with
  ``iscrowd`` (faster-coco-eval does the same), so an ``ignore``-marked box is an ordinary object in
  these twelve numbers. (convsight's VOC AP and training do honour it.)
- ``maxDets`` (1, 10, 100): detections per image *and class*, best scores first.

A ground-floor module: it imports numpy and faster-coco-eval only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.linspace(0.5, 0.95, 10))
COCO_MAX_DETS: tuple[int, int, int] = (1, 10, 100)
# pycocotools' area ranges in pixels; index 0..3 in its arrays.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2),
}
# The twelve numbers ``COCOeval.summarize`` prints, in its order: (kind, IoU or None, area, maxDets index).
STATS: tuple[tuple[str, str, float | None, str, int], ...] = (
    ("map", "ap", None, "all", 2), ("map50", "ap", 0.5, "all", 2), ("map75", "ap", 0.75, "all", 2),
    ("map_small", "ap", None, "small", 2), ("map_medium", "ap", None, "medium", 2), ("map_large", "ap", None, "large", 2),
    ("mar1", "ar", None, "all", 0), ("mar10", "ar", None, "all", 1), ("mar100", "ar", None, "all", 2),
    ("mar_small", "ar", None, "small", 2), ("mar_medium", "ar", None, "medium", 2), ("mar_large", "ar", None, "large", 2),
)


@dataclass(frozen=True)
class BoxArrays:
    """Boxes of a whole data set, one row each.

    image: ``(N,)`` int, the image's position (0-based); boxes: ``(N, 4)`` float64 xyxy; labels:
    ``(N,)`` int, 0-based class; scores: ``(N,)`` float64 (detections) or None (ground truth);
    crowd: ``(N,)`` bool or None; areas: ``(N,)`` float64 (NaN = use the box area) or None.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    crowd: np.ndarray | None = None
    areas: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class CocoResult:
    """``stats``: the twelve numbers by name (NaN where pycocotools prints -1); ``precision``:
    ``(T, 101, K, 4, 3)`` and ``recall`` ``(T, K, 4, 3)`` as ``COCOeval.eval`` (-1 = undefined)."""

    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    iou_thresholds: np.ndarray


def _engine() -> tuple[Any, Any]:
    """faster-coco-eval's C++ module and its ``Params`` (the parts of it this module drives)."""
    try:
        import faster_coco_eval.faster_eval_api_cpp as _C
        from faster_coco_eval.core.cocoeval import Params

        _C.COCOevalEvaluateAccumulate, _C.Dataset.append  # noqa: B018  (tested with 1.8)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"COCO scoring needs faster-coco-eval's C++ core as in version 1.8 "
                          f"(pip install 'faster-coco-eval~=1.8'): {e}") from e
    return _C, Params


def _datasets(gt: BoxArrays, dt: BoxArrays, max_det: int, num_classes: int) -> tuple[object, object, np.ndarray, np.ndarray]:
    """faster-coco-eval's C++ ground-truth and detection sets, filled with the fields its matching
    reads (what ``COCOeval._prepare`` would put there), plus the order of the detections it scores:
    per (image, class) by score, stable, cut to ``max_det`` (``computeIoU``'s order)."""
    _C, _ = _engine()
    g_area = (gt.boxes[:, 2] - gt.boxes[:, 0]) * (gt.boxes[:, 3] - gt.boxes[:, 1])
    if gt.areas is not None:
        g_area = np.where(np.isnan(gt.areas), g_area, gt.areas)
    crowd = (np.zeros(len(gt), bool) if gt.crowd is None else gt.crowd).astype(int).tolist()
    gts = _C.Dataset()
    # ids from 1: faster-coco-eval reads id 0 as "unmatched". "ignore" = iscrowd, as _prepare sets it.
    for i, m, c, a, cr in zip(range(1, len(gt) + 1), (gt.image + 1).tolist(), (gt.labels + 1).tolist(),
                              g_area.tolist(), crowd, strict=True):
        gts.append(m, c, {"id": i, "area": a, "iscrowd": cr, "ignore": cr})
    d_area = (dt.boxes[:, 2] - dt.boxes[:, 0]) * (dt.boxes[:, 3] - dt.boxes[:, 1])
    scores = dt.scores if dt.scores is not None else np.ones(len(dt))
    dts = _C.Dataset()
    for i, m, c, a, s in zip(range(1, len(dt) + 1), (dt.image + 1).tolist(), (dt.labels + 1).tolist(),
                             d_area.tolist(), scores.tolist(), strict=True):
        dts.append(m, c, {"id": i, "area": a, "score": s, "iscrowd": 0})
    key = dt.image.astype(np.int64) * num_classes + dt.labels
    order = np.lexsort((-scores, key))  # by (image, class), then score; lexsort is stable
    k = key[order]
    rank = np.arange(len(k)) - np.searchsorted(k, k, "left")
    return gts, dts, order[rank < max_det], g_area


def _ious(gt: BoxArrays, dt: BoxArrays, scored: np.ndarray, num_images: int, num_classes: int) -> list:
    """``ious[image][class]``: the ``(D, G)`` IoU block ``COCOeval.computeIoU`` gives (detections in
    ``scored`` order, ground truth in file order; a crowd region's IoU is intersection over the
    detection's area), ``[]`` where either side is empty. Computed for all pairs at once."""
    g_key = gt.image.astype(np.int64) * num_classes + gt.labels
    g_order = np.argsort(g_key, kind="stable")
    g_sorted = g_key[g_order]
    d_key = dt.image.astype(np.int64)[scored] * num_classes + dt.labels[scored]
    lo, hi = np.searchsorted(g_sorted, d_key, "left"), np.searchsorted(g_sorted, d_key, "right")
    counts = hi - lo
    pair_d = np.repeat(scored, counts)
    pair_g = g_order[np.repeat(lo, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)]
    a, b = dt.boxes[pair_d], gt.boxes[pair_g]
    inter = (np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
             * np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    union = area_a + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    if gt.crowd is not None:
        union = np.where(gt.crowd[pair_g], area_a, union)
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    empty: list[float] = []  # one shared object: the C++ side only reads these
    out: list[list[Any]] = [[empty] * num_classes for _ in range(num_images)]
    pair_key, pair_cols = np.repeat(d_key, counts), np.repeat(counts, counts)
    cuts = np.flatnonzero(np.diff(pair_key)) + 1
    starts, ends = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(pair_key)]])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e > s:
            key = int(pair_key[s])
            out[key // num_classes][key % num_classes] = iou[s:e].reshape(-1, int(pair_cols[s])).tolist()
    return out


def coco_evaluate(gt: BoxArrays, dt: BoxArrays, num_images: int, num_classes: int,
                  iou_thresholds: tuple[float, ...] = COCO_IOU_THRESHOLDS, max_dets: int = 100) -> CocoResult:
    """pycocotools' bbox evaluation of ``dt`` against ``gt`` over ``num_images`` images and
    ``num_classes`` classes (every class is evaluated, as ``COCOeval`` evaluates every category of
    the ground-truth file). ``max_dets`` replaces COCO's 100 (AR@1 and AR@10 stay, capped by it).

    This drives faster-coco-eval's C++ ``COCOevalEvaluateAccumulate`` with what its ``COCOeval``
    would compute in Python (records, IoU blocks), built here from arrays in one vectorised pass.
    """
    _C, Params = _engine()
    thr = np.asarray(iou_thresholds, dtype=np.float64)
    if num_images == 0 or num_classes == 0:
        precision, recall = -np.ones((len(thr), 101, num_classes, 4, 3)), -np.ones((len(thr), num_classes, 4, 3))
        return CocoResult({s[0]: math.nan for s in STATS}, precision, recall, thr)
    p = Params(iouType="bbox", ranges={k: list(v) for k, v in AREA_RANGES.items() if k != "all"})
    p.iouThrs = thr
    p.maxDets = [min(m, max_dets) for m in COCO_MAX_DETS[:2]] + [max_dets]
    p.imgIds, p.catIds = list(range(1, num_images + 1)), list(range(1, num_classes + 1))
    gts, dts, scored, _ = _datasets(gt, dt, max_dets, num_classes)
    ious = _ious(gt, dt, scored, num_images, num_classes)
    ev = _C.COCOevalEvaluateAccumulate(p, ious, gts, dts, p.imgIds, p.catIds, True)
    precision, recall = np.asarray(ev["precision"]), np.asarray(ev["recall"])
    return CocoResult(_summarize(precision, recall, thr), precision, recall, thr)


def _summarize(precision: np.ndarray, recall: np.ndarray, thr: np.ndarray) -> dict[str, float]:
    """``COCOeval.summarize`` without printing: means over the defined (> -1) entries, NaN if none."""
    areas = list(AREA_RANGES)
    out: dict[str, float] = {}
    for name, kind, iou, area, m in STATS:
        a = areas.index(area)
        s = precision[:, :, :, a, m] if kind == "ap" else recall[:, :, a, m]
        if iou is not None:
            t = np.nonzero(np.isclose(thr, iou))[0]
            s = s[t] if len(t) else s[:0]
        v = s[s > -1]
        out[name] = float(v.mean()) if v.size else math.nan
    return out
