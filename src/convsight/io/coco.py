"""COCO JSON: read into and write from :class:`~convsight.io.annotations.AnnotationSet`.

COCO boxes are ``[x, y, w, h]`` in absolute pixels; the conversion to ``xyxy`` happens here and only
here, in float64 so that ``xyxy -> xywh -> xyxy`` is exact for float32 boxes. Category ids are mapped
to contiguous 0-based labels in the order of their ids (and back to ``1..C`` on writing). Results files
(the list of ``{image_id, category_id, bbox, score}`` that detectors emit) are handled here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from convsight.errors import DatasetError
from convsight.io import atomic
from convsight.io.annotations import AnnotationSet, ImageAnnotation, relative_or_absolute, validate_image
from convsight.structures import Detections

DEFAULT_JSON_NAME = "annotations.json"


@dataclass(frozen=True)
class CocoIds:
    """The COCO ids behind an :class:`AnnotationSet` read from a file: ``image_ids[i]`` is image ``i``'s
    id, ``category_ids[k]`` is label ``k``'s category id."""

    image_ids: tuple[int, ...]
    category_ids: tuple[int, ...]


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


def read_coco_with_ids(
    json_path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None
) -> tuple[AnnotationSet, CocoIds]:
    """Read a COCO instances file. Image paths are ``image_root / file_name`` (default: the json's folder).

    Raises :class:`DatasetError` naming the file and the problem (missing keys, unknown ids, boxes
    with negative size or outside the image).
    """
    json_path = Path(json_path)
    root = Path(image_root) if image_root is not None else json_path.parent
    doc = _load_json(json_path)
    where = str(json_path)
    if not isinstance(doc, dict):
        raise DatasetError(f"{where}: expected a COCO object with 'images', 'annotations', 'categories'")
    images = _require(doc, "images", list, where)
    anns = doc.get("annotations", [])
    cats = _require(doc, "categories", list, where)
    if not isinstance(anns, list):
        raise DatasetError(f"{where}: 'annotations' must be a list")

    cat_list = sorted(
        ((_require(c, "id", int, f"{where}: categories"), str(_require(c, "name", str, f"{where}: categories")))
         for c in cats)
    )
    cat_ids = [cid for cid, _ in cat_list]
    if len(set(cat_ids)) != len(cat_ids):
        raise DatasetError(f"{where}: duplicate category ids")
    label_of = {cid: k for k, cid in enumerate(cat_ids)}

    per_image: dict[int, tuple[list[list[float]], list[int]]] = {}
    image_ids: list[int] = []
    for im in images:
        iid = _require(im, "id", int, f"{where}: images")
        if iid in per_image:
            raise DatasetError(f"{where}: duplicate image id {iid}")
        per_image[iid] = ([], [])
        image_ids.append(iid)
    for k, a in enumerate(anns):
        aw = f"{where}: annotations[{k}]"
        iid = _require(a, "image_id", int, aw)
        cid = _require(a, "category_id", int, aw)
        bbox = _require(a, "bbox", list, aw)
        if iid not in per_image:
            raise DatasetError(f"{aw}: unknown image_id {iid}")
        if cid not in label_of:
            raise DatasetError(f"{aw}: unknown category_id {cid}")
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise DatasetError(f"{aw}: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        per_image[iid][0].append([x, y, x + w, y + h])  # float64 arithmetic: exact for float32 inputs
        per_image[iid][1].append(label_of[cid])

    out: list[ImageAnnotation] = []
    for im, iid in zip(images, image_ids, strict=True):
        iw = f"{where}: image id {iid}"
        file_name = _require(im, "file_name", str, iw)
        width = _require(im, "width", int, iw)
        height = _require(im, "height", int, iw)
        boxes, labels = per_image[iid]
        ann = ImageAnnotation(
            path=root / file_name,
            width=width,
            height=height,
            boxes=torch.tensor(boxes, dtype=torch.float64).to(torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
        )
        validate_image(ann, [n for _, n in cat_list], where=f"{where} ({file_name})")
        out.append(ann)
    ds = AnnotationSet(images=tuple(out), class_names=tuple(n for _, n in cat_list))
    return ds, CocoIds(image_ids=tuple(image_ids), category_ids=tuple(cat_ids))


def read_coco(
    json_path: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None
) -> AnnotationSet:
    """Read a COCO instances file (see :func:`read_coco_with_ids`)."""
    return read_coco_with_ids(json_path, image_root)[0]


def to_coco_dict(ds: AnnotationSet, root: str | os.PathLike[str]) -> dict[str, Any]:
    """The COCO document for ``ds``; image ``i`` gets id ``i + 1`` and label ``k`` category id ``k + 1``.

    ``area`` is the box area (there are no masks) and ``iscrowd`` is 0.
    """
    images, anns = [], []
    for i, im in enumerate(ds.images):
        images.append(
            {"id": i + 1, "file_name": relative_or_absolute(im.path, Path(root)), "width": im.width, "height": im.height}
        )
        for box, label in zip(im.boxes.double().tolist(), im.labels.tolist(), strict=True):
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": label + 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    cats = [{"id": k + 1, "name": n, "supercategory": "object"} for k, n in enumerate(ds.class_names)]
    return {"images": images, "annotations": anns, "categories": cats}


def write_coco(ds: AnnotationSet, json_path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` as COCO JSON (atomically); ``file_name`` is relative to the json's folder."""
    json_path = Path(json_path)
    return atomic.write_json(json_path, to_coco_dict(ds, json_path.parent), indent=None)


# ---- results files: what a detector emits and what `convsight detect score` reads -----------------


def detections_to_coco_results(
    detections: Sequence[Any], image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """COCO results list from per-image :class:`~convsight.structures.Detections`."""
    out = []
    for det, iid in zip(detections, image_ids, strict=True):
        for box, score, label in zip(det.boxes.double().tolist(), det.scores.tolist(), det.labels.tolist(), strict=True):
            x1, y1, x2, y2 = box
            out.append(
                {"image_id": int(iid), "category_id": int(category_ids[label]), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            )
    return out


def read_coco_results(path: str | os.PathLike[str], ids: CocoIds) -> list[Any]:
    """Read a COCO results file into one :class:`Detections` per image of ``ids`` (same order)."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, list):
        raise DatasetError(f"{path}: a COCO results file is a JSON list of {{image_id, category_id, bbox, score}}")
    index = {iid: i for i, iid in enumerate(ids.image_ids)}
    label_of = {cid: k for k, cid in enumerate(ids.category_ids)}
    boxes: list[list[list[float]]] = [[] for _ in ids.image_ids]
    scores: list[list[float]] = [[] for _ in ids.image_ids]
    labels: list[list[int]] = [[] for _ in ids.image_ids]
    for k, r in enumerate(doc):
        rw = f"{path}: result[{k}]"
        iid = _require(r, "image_id", int, rw)
        cid = _require(r, "category_id", int, rw)
        bbox = _require(r, "bbox", list, rw)
        score = _require(r, "score", (int, float), rw)
        if iid not in index:
            raise DatasetError(f"{rw}: image_id {iid} is not in the ground truth")
        if cid not in label_of:
            raise DatasetError(f"{rw}: category_id {cid} is not in the ground truth")
        if len(bbox) != 4:
            raise DatasetError(f"{rw}: bbox must be 4 numbers [x, y, w, h]")
        x, y, w, h = (float(v) for v in bbox)
        i = index[iid]
        boxes[i].append([x, y, x + w, y + h])
        scores[i].append(float(score))
        labels[i].append(label_of[cid])
    return [
        Detections(
            boxes=torch.tensor(b, dtype=torch.float64).to(torch.float32).reshape(-1, 4),
            scores=torch.tensor(s, dtype=torch.float32),
            labels=torch.tensor(lab, dtype=torch.int64),
        )
        for b, s, lab in zip(boxes, scores, labels, strict=True)
    ]
