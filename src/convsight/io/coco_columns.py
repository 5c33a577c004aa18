"""The fast path of the COCO reader: a whole ``annotations`` list checked and split per image with
numpy, for files with nothing wrong in them (every real COCO file). Anything irregular returns None
and :func:`convsight.io.coco.read_coco` re-reads record by record, to name the bad record or to
collect it as a :class:`~convsight.io.annotations.Problem`. Both paths apply the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convsight.io.annotations import OUTSIDE_TOLERANCE

_FIELDS = ("image_id", "category_id", "iscrowd", "ignore", "area", "id")


@dataclass(frozen=True)
class AnnotationColumns:
    """One row per annotation, grouped by image: ``starts[i]:starts[i + 1]`` are image ``i``'s rows.

    boxes ``(A, 4)`` float64 xyxy; labels ``(A,)`` int64; crowd, ignore ``(A,)`` bool; areas ``(A,)``
    float64 (NaN = absent); ids ``(A,)`` int64 (-1 = absent); segmentations as read.
    """

    starts: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    crowd: np.ndarray
    ignore: np.ndarray
    areas: np.ndarray
    ids: np.ndarray
    segmentations: list[Any]


def annotation_columns(anns: list[Any], image_ids: Sequence[int], sizes: np.ndarray,
                       category_ids: Sequence[int]) -> AnnotationColumns | None:
    """Columns for ``anns`` when every record is well-formed, else None.

    image_ids: the images' ids in file order; sizes: ``(N, 2)`` their width, height; category_ids:
    label ``k``'s id. Rules: known image and category; ``bbox`` 4 finite numbers with w, h >= 0, and
    for objects (not crowd) w, h > 0 and inside the image within ``OUTSIDE_TOLERANCE``.
    """
    nan = math.nan
    try:
        rows = np.array([(a["image_id"], a["category_id"], a.get("iscrowd", 0), a.get("ignore", 0),
                          nan if a.get("area") is None else a["area"], a.get("id", -1), *a["bbox"]) for a in anns],
                        dtype=np.float64).reshape(len(anns), 10)
        # numpy would also parse "12" or True: only the JSON types the record-by-record path accepts pass.
        kinds = {(f, type(a.get(f, 0))) for a in anns for f in _FIELDS} | {("bbox", type(v)) for a in anns for v in a["bbox"]}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    allowed = {(f, int) for f in _FIELDS} | {("iscrowd", bool), ("ignore", bool), ("area", float), ("area", type(None)),
                                             ("bbox", int), ("bbox", float)}
    if not kinds <= allowed or not np.isfinite(rows[:, 6:]).all():
        return None
    image = position(rows[:, 0], image_ids)
    labels = position(rows[:, 1], category_ids)
    if (image < 0).any() or (labels < 0).any():
        return None
    crowd, ignore = rows[:, 2] != 0, rows[:, 3] != 0
    x, y, w, h = rows[:, 6], rows[:, 7], rows[:, 8], rows[:, 9]
    width, height = sizes[image, 0], sizes[image, 1]
    tol = OUTSIDE_TOLERANCE
    bad = (w < 0) | (h < 0) | (~crowd & ((w == 0) | (h == 0) | (x < -tol) | (y < -tol)
                                         | (x + w > width + tol) | (y + h > height + tol)))
    if bad.any():
        return None
    order = np.argsort(image, kind="stable")  # file order within each image
    starts = np.searchsorted(image[order], np.arange(len(image_ids) + 1))
    boxes = np.stack([x, y, x + w, y + h], 1)  # float64 arithmetic: exact for float32 inputs
    segs = [anns[i].get("segmentation") for i in order.tolist()]
    return AnnotationColumns(starts, boxes[order], labels[order], crowd[order], ignore[order], rows[order, 4],
                             rows[order, 5].astype(np.int64), segs)


def position(values: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Position of each value in ``ids`` (-1 where absent)."""
    table = np.asarray(ids, dtype=np.float64)
    if not len(table):
        return np.full(len(values), -1)
    order = np.argsort(table, kind="stable")
    pos = np.clip(np.searchsorted(table[order], values), 0, len(table) - 1)
    return np.where(table[order][pos] == values, order[pos], -1)
