"""Scoring detections from Python: COCO's twelve numbers and VOC AP in one call.

    m = convsight.evaluate("data/val", "results.json")       # what `convsight detect score` prints
    m = convsight.evaluate("data/val", det.predict(paths, conf=0.01))
    m.map50, m.map, m.per_class["star"].ap, m.to_dict()
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convsight.detection.metrics import DetectionMetrics
from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet

Predictions = str | os.PathLike[str] | Sequence[Any]


def evaluate(gt: str | os.PathLike[str] | AnnotationSet, predictions: Predictions, max_dets: int = 100,
             use_difficult: bool = False) -> DetectionMetrics:
    """Metrics of ``predictions`` against the ground truth ``gt``.

    gt: a dataset folder (COCO, VOC or YOLO, found by its layout), a COCO instances ``.json``, or an
    :class:`~convsight.io.annotations.AnnotationSet`. predictions, one of:

    - a COCO results file (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``) with
      the ground truth's ids (``1..N`` / ``1..C`` for formats without ids), as ``detect score`` reads;
    - a list of such records (dicts);
    - a list of per-image results (:class:`~convsight.api.detect.DetectionResult`, or anything with
      ``.boxes`` xyxy, ``.scores``, ``.labels``): matched to the ground truth's images by their
      ``source`` path when every result has one that the ground truth holds, else by position.

    max_dets: detections per image kept for AP (COCO: 100); use_difficult: count VOC ``difficult``
    objects. Returns :class:`~convsight.detection.metrics.DetectionMetrics` (``map``, ``map50``,
    ``voc_map50``, ``per_class``, ``to_dict()``, ...).
    """
    from convsight.detection.metrics import evaluate_arrays, evaluate_detections, ground_truth_arrays
    from convsight.detection.scoring import read_ground_truth, score_results

    ds = gt if isinstance(gt, AnnotationSet) else read_ground_truth(gt)
    if isinstance(predictions, (str, os.PathLike)):
        return score_results(ds, predictions, max_dets=max_dets, use_difficult=use_difficult)[1]
    items = list(predictions)
    if items and all(isinstance(r, Mapping) for r in items):
        truth, flags = ground_truth_arrays(ds.images)
        return evaluate_arrays(truth, flags, _records(items, ds), len(ds), ds.class_names, max_dets=max_dets,
                               use_difficult=use_difficult)
    return evaluate_detections(_aligned(items, ds), ds.images, len(ds.class_names), ds.class_names,
                               max_dets=max_dets, use_difficult=use_difficult)


def _records(records: list[Mapping[str, Any]], ds: AnnotationSet) -> Any:
    """COCO result records -> whole-set arrays in ``ds``'s positions; a bad record is a DatasetError."""
    from convsight.detection.coco_eval import BoxArrays
    from convsight.io.coco import CocoIds

    ids = CocoIds.of(ds)
    image_pos = {int(i): n for n, i in enumerate(ids.image_ids)}
    class_pos = {int(c): k for k, c in enumerate(ids.category_ids)}
    rows = np.zeros((len(records), 7))
    for n, r in enumerate(records):
        try:
            x, y, w, h = (float(v) for v in r["bbox"])
            rows[n] = (image_pos[int(r["image_id"])], class_pos[int(r["category_id"])], float(r["score"]), x, y, x + w, y + h)
        except KeyError as e:
            raise DatasetError(f"predictions[{n}]: missing key or unknown id {e} (image ids {ids.image_ids[:5]}..., "
                               f"category ids {ids.category_ids})") from None
        except (TypeError, ValueError) as e:
            raise DatasetError(f"predictions[{n}]: not a COCO result record ({e})") from None
    if not np.isfinite(rows).all():
        raise DatasetError(f"predictions[{int(np.nonzero(~np.isfinite(rows).all(1))[0][0])}]: NaN or infinite value")
    return BoxArrays(rows[:, 0].astype(np.int64), rows[:, 3:], rows[:, 1].astype(np.int64), scores=rows[:, 2])


def _aligned(results: list[Any], ds: AnnotationSet) -> list[Any]:
    """One result per ground-truth image, in its order (by source path when that is possible)."""
    from convsight.structures import Detections

    paths = {_key(im.path): n for n, im in enumerate(ds.images)}
    sources = [getattr(r, "source", None) for r in results]
    if results and all(s is not None and _key(s) in paths for s in sources):
        out: list[Any] = [Detections.empty() for _ in ds.images]
        for r, s in zip(results, sources, strict=True):
            out[paths[_key(s)]] = r
        return out
    if len(results) != len(ds):
        raise DatasetError(f"{len(results)} prediction results for {len(ds)} ground-truth images: give one per "
                           "image in the dataset's order, or results whose source paths are the dataset's images")
    return results


def _key(path: str | os.PathLike[str]) -> str:
    return str(Path(path).resolve())
