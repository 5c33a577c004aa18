"""Score a results file against a dataset: what ``convsight detect score GT RESULTS`` runs.

The results file is read as columns and scored as whole-set arrays (no object per image): on a
val2017-sized problem this path takes no longer than faster-coco-eval from the same two files
(``benchmarks/coco_eval.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from convsight.detection.coco_eval import BoxArrays
from convsight.detection.metrics import (
    DetectionMetrics,
    evaluate_arrays,
    ground_truth_arrays,
)
from convsight.io.annotations import AnnotationSet
from convsight.io.coco import read_coco, read_coco_result_columns


def read_ground_truth(path: str | os.PathLike[str]) -> AnnotationSet:
    """A COCO instances ``.json`` file (image files not needed), or any dataset folder."""
    path = Path(path)
    if path.suffix.lower() == ".json" and path.is_file():
        return read_coco(path)
    from convsight.io.formats import read_dataset

    return read_dataset(path)


def score_results(gt: str | os.PathLike[str] | AnnotationSet, results: str | os.PathLike[str], max_dets: int = 100,
                  use_difficult: bool = False) -> tuple[AnnotationSet, DetectionMetrics]:
    """The ground truth as read and the metrics of the COCO results file ``results`` (with the
    ground truth's own image and category ids; ``1..N`` / ``1..C`` for formats without ids)."""
    ds = gt if isinstance(gt, AnnotationSet) else read_ground_truth(gt)
    cols = read_coco_result_columns(results, ds)
    truth, flags = ground_truth_arrays(ds.images)
    dets = BoxArrays(cols.image, cols.boxes, cols.labels, scores=cols.scores)
    return ds, evaluate_arrays(truth, flags, dets, len(ds), ds.class_names, max_dets=max_dets, use_difficult=use_difficult)
