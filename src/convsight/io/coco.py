"""COCO JSON as pycocotools reads it, into and out of :class:`~convsight.io.annotations.AnnotationSet`.

The file format is https://cocodataset.org/#format-data ("Object Detection"). What is kept, per field:

- ``images[]``: ``id`` -> ``image_id``; ``file_name`` -> ``path`` (under ``image_root``, default the
  json's folder); ``width``/``height``; every other field (``license``, ``coco_url``, ``flickr_url``,
  ``date_captured``, ...) -> ``extra``, written back unchanged.
- ``annotations[]``: ``bbox`` ``[x, y, w, h]`` -> ``xyxy`` (in float64, so ``xyxy -> xywh -> xyxy`` is
  exact for float32 boxes); ``iscrowd=1`` -> ``crowd`` (an ignore region, see
  :mod:`convsight.detection.coco_eval`); the optional ``ignore`` key -> ``ignore``; ``area`` -> ``areas``
  (NaN when absent); ``segmentation`` (polygons or RLE, as written) -> ``segmentations``; ``id`` ->
  ``box_ids``. A crowd region's box gets no size check (only finite numbers, w, h >= 0): it is not
  an object, and pycocotools needs no more.
- ``categories[]``: labels are the categories in order of id; the ids themselves (COCO's skip 12,
  26, 29, ...) -> ``category_ids``; ``supercategory`` -> ``meta["supercategories"]`` (by name).
- ``info``, ``licenses`` -> ``meta``.

The writer writes all of it back; a set without ids (read from VOC or YOLO) gets image ids ``1..N``,
annotation ids ``1..M`` and category ids from :meth:`AnnotationSet.category_id` (boxes added to a
COCO set get ids after the largest one it has).

Results files (the list of ``{image_id, category_id, bbox, score}`` that detectors emit, as
``COCO.loadRes`` takes it) use the data set's own image and category ids.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convsight.errors import DatasetError
from convsight.io import atomic
from convsight.io.annotations import (
    OUTSIDE_TOLERANCE,
    AnnotationSet,
    ImageAnnotation,
    Problem,
    relative_or_absolute,
)
from convsight.io.coco_columns import AnnotationColumns, annotation_columns, position
from convsight.structures import Detections

DEFAULT_JSON_NAME = "annotations.json"
_IMAGE_KEYS = ("id", "file_name", "width", "height")


@dataclass(frozen=True)
class CocoIds:
    """The COCO ids behind an :class:`AnnotationSet`: ``image_ids[i]`` is image ``i``'s id,
    ``category_ids[k]`` is label ``k``'s category id."""

    image_ids: tuple[int, ...]
    category_ids: tuple[int, ...]

    @staticmethod
    def of(ds: AnnotationSet) -> CocoIds:
        """The ids the writer gives ``ds`` (its own where it has them)."""
        return CocoIds(tuple(_image_ids(ds)), tuple(ds.category_id(k) for k in range(ds.num_classes)))


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected a COCO .json file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def _require(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _bbox(a: dict[str, Any], crowd: bool, width: int, height: int) -> tuple[list[float] | None, str]:
    """``(xyxy, "")`` for a usable bbox, else ``(None, reason)``."""
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        return None, f"bbox must be 4 numbers [x, y, w, h], got {bbox!r}"
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None, f"bbox {bbox} has non-finite numbers"
    if w < 0 or h < 0 or (not crowd and (w == 0 or h == 0)):
        return None, f"bbox {bbox} has zero or negative width/height"
    tol = OUTSIDE_TOLERANCE
    if not crowd and (x < -tol or y < -tol or x + w > width + tol or y + h > height + tol):
        return None, f"bbox {bbox} lies outside the {width}x{height} image"
    return [x, y, x + w, y + h], ""  # float64 arithmetic: exact for float32 inputs


def read_coco(json_path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None,
              problems: list[Problem] | None = None) -> AnnotationSet:
    """Read a COCO instances file (see the module docstring for what is kept).

    Raises :class:`DatasetError` naming the file and the problem. With ``problems`` given, an
    unknown image or category id, a duplicate image id, a malformed record or a bad bbox is appended
    there and that record skipped; only a file that is not COCO at all still raises.
    """
    json_path = Path(json_path)
    root = Path(image_root) if image_root is not None else json_path.parent
    where = str(json_path)
    doc = _load_json(json_path)
    if not isinstance(doc, dict):
        raise DatasetError(f"{where}: expected a COCO object with 'images', 'annotations', 'categories'")
    images = _require(doc, "images", list, where)
    anns = doc.get("annotations", [])
    cats = _require(doc, "categories", list, where)
    if not isinstance(anns, list):
        raise DatasetError(f"{where}: 'annotations' must be a list")

    def problem(file: str, reason: str) -> None:
        if problems is None:
            raise DatasetError(f"{file}: {reason}")
        problems.append(Problem(file, reason))

    def recover(e: DatasetError) -> None:
        """A malformed record: raise, or note it (file and reason split at the first ': ')."""
        if problems is None:
            raise e
        file, _, reason = str(e).partition(": ")
        problems.append(Problem(file, reason))

    cat_list = sorted((_require(c, "id", int, f"{where}: categories"), _require(c, "name", str, f"{where}: categories"))
                      for c in cats)
    cat_ids = [cid for cid, _ in cat_list]
    if len(set(cat_ids)) != len(cat_ids):
        raise DatasetError(f"{where}: duplicate category ids")
    label_of = {cid: k for k, cid in enumerate(cat_ids)}
    supercats = {str(c["name"]): c["supercategory"] for c in cats if "supercategory" in c}

    records: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for k, im in enumerate(images):
        try:
            iid = _require(im, "id", int, f"{where}: images[{k}]")
            rec = {key: _require(im, key, kind, f"{where}: image id {iid}")
                   for key, kind in (("file_name", str), ("width", int), ("height", int))}
        except DatasetError as e:
            recover(e)
            continue
        if rec["width"] <= 0 or rec["height"] <= 0:
            problem(f"{where} ({rec['file_name']})", f"image size must be positive, got {rec['width']}x{rec['height']}")
            continue
        if iid in records:
            problem(where, f"duplicate image id {iid} ({records[iid]['file_name']}, {rec['file_name']}); the second is skipped")
            continue
        records[iid] = {**rec, "extra": {key: v for key, v in im.items() if key not in _IMAGE_KEYS}, "anns": []}
        order.append(iid)
    sizes = np.array([(records[i]["width"], records[i]["height"]) for i in order], dtype=np.float64).reshape(-1, 2)
    fast = annotation_columns(anns, order, sizes, cat_ids)
    for k, a in enumerate(anns if fast is None else []):  # record by record only when something is off
        aw = f"{where}: annotations[{k}]" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        try:
            iid = _require(a, "image_id", int, aw)
            cid = _require(a, "category_id", int, aw)
            _require(a, "bbox", list, aw)
        except DatasetError as e:
            recover(e)
            continue
        if iid not in records:
            problem(aw, f"unknown image_id {iid}")
            continue
        if cid not in label_of:
            problem(aw, f"unknown category_id {cid}")
            continue
        crowd = bool(a.get("iscrowd", 0))
        rec = records[iid]
        box, reason = _bbox(a, crowd, rec["width"], rec["height"])
        if box is None:
            problem(f"{where} ({rec['file_name']})", f"annotation {a.get('id', k)}: {reason}")
            continue
        area = a.get("area")
        rec["anns"].append((box, label_of[cid], crowd, bool(a.get("ignore", 0)),
                            float(area) if isinstance(area, (int, float)) and not isinstance(area, bool) else math.nan,
                            a.get("segmentation"), int(a["id"]) if isinstance(a.get("id"), int) else -1))

    out = [_image(root, iid, records[iid]) if fast is None else _image_from_columns(root, iid, records[iid], fast, i)
           for i, iid in enumerate(order)]
    meta: dict[str, Any] = {key: doc[key] for key in ("info", "licenses") if key in doc}
    if supercats:
        meta["supercategories"] = supercats
    provenance = {"format": "coco", "layout": "single", "file": where, "class_names_from": "categories",
                  "crowd": sum(int(im.crowd.sum()) for im in out)}  # type: ignore[union-attr]
    return AnnotationSet(images=tuple(out), class_names=tuple(n for _, n in cat_list), category_ids=tuple(cat_ids),
                         meta=meta, provenance=provenance)


def _image(root: Path, iid: int, rec: dict[str, Any]) -> ImageAnnotation:
    cols = list(zip(*rec["anns"], strict=True)) if rec["anns"] else [[]] * 7
    boxes, labels, crowd, ignore, areas, segs, ids = cols
    return ImageAnnotation(
        path=root / rec["file_name"], width=rec["width"], height=rec["height"],
        boxes=torch.tensor(boxes, dtype=torch.float64).to(torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64), crowd=torch.tensor(crowd, dtype=torch.bool),
        ignore=torch.tensor(ignore, dtype=torch.bool), areas=torch.tensor(areas, dtype=torch.float64),
        segmentations=tuple(segs), box_ids=torch.tensor(ids, dtype=torch.int64), image_id=iid, extra=rec["extra"],
    )


def _image_from_columns(root: Path, iid: int, rec: dict[str, Any], cols: AnnotationColumns, i: int) -> ImageAnnotation:
    lo, hi = int(cols.starts[i]), int(cols.starts[i + 1])
    return ImageAnnotation(
        path=root / rec["file_name"], width=rec["width"], height=rec["height"],
        boxes=torch.from_numpy(cols.boxes[lo:hi]).to(torch.float32), labels=torch.from_numpy(cols.labels[lo:hi]),
        crowd=torch.from_numpy(cols.crowd[lo:hi]), ignore=torch.from_numpy(cols.ignore[lo:hi]),
        areas=torch.from_numpy(cols.areas[lo:hi]), segmentations=tuple(cols.segmentations[lo:hi]),
        box_ids=torch.from_numpy(cols.ids[lo:hi]), image_id=iid, extra=rec["extra"],
    )


def read_coco_with_ids(
    json_path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None
) -> tuple[AnnotationSet, CocoIds]:
    """:func:`read_coco` plus the file's ids as a :class:`CocoIds` (for results files)."""
    ds = read_coco(json_path, image_root)
    return ds, CocoIds.of(ds)


def _image_ids(ds: AnnotationSet) -> list[int]:
    """The images' own ids when every image has one and they are distinct, else ``1..N``."""
    ids = [im.image_id for im in ds.images]
    if all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return ids  # type: ignore[return-value]
    return list(range(1, len(ids) + 1))


def to_coco_dict(ds: AnnotationSet, root: str | os.PathLike[str]) -> dict[str, Any]:
    """The COCO document for ``ds`` (``file_name`` relative to ``root``); see the module docstring."""
    image_ids = _image_ids(ds)
    all_ids = [int(b) for im in ds.images for b in im.box_ids.tolist()]  # type: ignore[union-attr]
    known = [b for b in all_ids if b >= 0]
    keep_ids = len(set(known)) == len(known)  # the file's own ids; boxes without one get max + 1, ...
    next_id = max(known, default=0) + 1 if keep_ids else 1
    images, anns = [], []
    for im, iid in zip(ds.images, image_ids, strict=True):
        extra = {k: v for k, v in im.extra.items() if k not in _IMAGE_KEYS}
        images.append({"id": iid, "file_name": relative_or_absolute(im.path, Path(root)), "width": im.width,
                       "height": im.height, **extra})
        rows = zip(im.boxes.double().tolist(), im.labels.tolist(), im.crowd.tolist(), im.ignore.tolist(),  # type: ignore[union-attr]
                   im.areas.tolist(), im.segmentations, im.box_ids.tolist(), strict=True)  # type: ignore[union-attr]
        for (x1, y1, x2, y2), label, crowd, ignore, area, seg, bid in rows:
            w, h = x2 - x1, y2 - y1
            if not keep_ids or bid < 0:
                bid, next_id = next_id, next_id + 1
            ann: dict[str, Any] = {"id": bid, "image_id": iid,
                                   "category_id": ds.category_id(label), "bbox": [x1, y1, w, h],
                                   "area": w * h if math.isnan(area) else area, "iscrowd": int(crowd)}
            if seg is not None:
                ann["segmentation"] = seg
            if ignore:
                ann["ignore"] = 1
            anns.append(ann)
    supercats = ds.meta.get("supercategories", {})
    cats = [{"id": ds.category_id(k), "name": n, "supercategory": supercats.get(n, "object")}
            for k, n in enumerate(ds.class_names)]
    doc: dict[str, Any] = {key: ds.meta[key] for key in ("info", "licenses") if key in ds.meta}
    return {**doc, "images": images, "annotations": anns, "categories": cats}


def write_coco(ds: AnnotationSet, json_path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` as COCO JSON (atomically); ``file_name`` is relative to the json's folder."""
    json_path = Path(json_path)
    return atomic.write_json(json_path, to_coco_dict(ds, json_path.parent), indent=None)


# ---- results files: what a detector emits and what `convsight detect score` reads -----------------


def detections_to_coco_results(
    detections: Sequence[Any], image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """COCO results list from per-image :class:`~convsight.structures.Detections` (``image_ids[i]``
    for image ``i``, ``category_ids[k]`` for label ``k``: a data set's own ids, see :class:`CocoIds`)."""
    out = []
    for det, iid in zip(detections, image_ids, strict=True):
        for (x1, y1, x2, y2), score, label in zip(det.boxes.double().tolist(), det.scores.tolist(), det.labels.tolist(), strict=True):
            out.append({"image_id": int(iid), "category_id": int(category_ids[label]),
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    return out


@dataclass(frozen=True)
class ResultColumns:
    """A results file as columns, one row per detection: image ``(R,)`` int64 (position in the
    ground truth's images), boxes ``(R, 4)`` float64 xyxy, scores ``(R,)`` float64, labels ``(R,)`` int64."""

    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def read_coco_result_columns(path: str | os.PathLike[str], ids: CocoIds | AnnotationSet) -> ResultColumns:
    """Read a COCO results file as :class:`ResultColumns` (what scoring needs, without one object
    per image). An image or category id the ground truth lacks is a :class:`DatasetError`
    (pycocotools' ``loadRes`` refuses such files too)."""
    path = Path(path)
    ids = CocoIds.of(ids) if isinstance(ids, AnnotationSet) else ids
    doc = _load_json(path)
    if not isinstance(doc, list):
        raise DatasetError(f"{path}: a COCO results file is a JSON list of {{image_id, category_id, bbox, score}}")
    try:  # one pass into a (R, 7) array; any odd record sends us to _explain
        rows = np.array([(r["image_id"], r["category_id"], r["score"], *r["bbox"]) for r in doc], dtype=np.float64)
        rows = rows.reshape(len(doc), 7)
    except (KeyError, TypeError, ValueError):
        _explain(doc, path, ids)
        raise  # _explain always raises; this is for type checkers
    image, labels = position(rows[:, 0], ids.image_ids), position(rows[:, 1], ids.category_ids)
    bad = np.nonzero((image < 0) | (labels < 0) | ~np.isfinite(rows).all(1))[0]
    if len(bad):
        _explain(doc[bad[0]:], path, ids, offset=int(bad[0]))
    xywh = rows[:, 3:]
    return ResultColumns(image, np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1), rows[:, 2].copy(), labels)


def read_coco_results(path: str | os.PathLike[str], ids: CocoIds | AnnotationSet) -> list[Detections]:
    """Read a COCO results file into one :class:`Detections` per image of ``ids`` (same order).

    Boxes are float32 like every box in convsight (the ground truth's too); scores stay float64 so
    that no two distinct scores of the file become a tie.
    """
    ids = CocoIds.of(ids) if isinstance(ids, AnnotationSet) else ids
    cols = read_coco_result_columns(path, ids)
    order = np.argsort(cols.image, kind="stable")
    cuts = np.searchsorted(cols.image[order], np.arange(1, len(ids.image_ids)))
    boxes = torch.from_numpy(cols.boxes).to(torch.float32)
    scores, labels = torch.from_numpy(cols.scores), torch.from_numpy(cols.labels)
    return [Detections(boxes[sel], scores[sel], labels[sel]) for sel in np.split(order, cuts)]


def _explain(doc: list[Any], path: Path, ids: CocoIds, offset: int = 0) -> None:
    """Raise a :class:`DatasetError` for the first bad record of a results list."""
    index, label_of = set(ids.image_ids), set(ids.category_ids)
    for k, r in enumerate(doc, start=offset):
        rw = f"{path}: result[{k}]"
        iid = _require(r, "image_id", int, rw)
        cid = _require(r, "category_id", int, rw)
        bbox = _require(r, "bbox", list, rw)
        score = _require(r, "score", (int, float), rw)
        if iid not in index:
            raise DatasetError(f"{rw}: image_id {iid} is not in the ground truth")
        if cid not in label_of:
            raise DatasetError(f"{rw}: category_id {cid} is not in the ground truth")
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise DatasetError(f"{rw}: bbox must be 4 numbers [x, y, w, h]")
        if not all(math.isfinite(v) for v in (score, *bbox)):
            raise DatasetError(f"{rw}: score and bbox must be finite numbers")
    raise DatasetError(f"{path}: malformed results file")
