"""One entry point for the three dataset formats: detect, read, write and convert.

Read (``ROOT`` is the dataset folder; :func:`detect_format` tries COCO, then VOC, then YOLO):

* **COCO**: a ``.json`` file given directly; ``ROOT/annotations.json``; COCO's own
  ``ROOT/annotations/instances_<split>.json`` (images in ``ROOT/<split>/``, ``ROOT/images/<split>/``
  or ``ROOT/images/``, whichever holds them); Roboflow's ``ROOT/<split>/_annotations.coco.json`` with
  the images beside it; or the one ``.json`` file in ``ROOT``. Each json of a split layout sets its
  images' ``split``.
* **VOC**: a VOCdevkit folder, a ``VOC2007/``-style folder or ``Annotations/`` + ``JPEGImages/``
  (see :mod:`convsight.io.voc`); ``ImageSets/Main/<split>.txt`` gives the splits.
* **YOLO**: Ultralytics ``data.yaml``, Roboflow's split-first export (``train/images``,
  ``valid/labels``, ...), darknet / CVAT "YOLO 1.1" (``obj.data``, ``obj.names``,
  ``obj_train_data/``, ``train.txt``), and plain ``images/`` + ``labels/`` (+ ``classes.txt``); see
  :mod:`convsight.io.yolo_layout`. Without any names file the classes are named ``0``..``K`` from the
  labels, and ``provenance["class_names_from"]`` says so. Ultralytics polygon lines become their
  bounding box (counted in ``provenance["polygon_lines"]``).

Split names: Roboflow's and darknet's ``valid`` is read as ``val``, so ``--split val`` works the same
on every layout. Other names are kept as written (COCO's ``val2017`` stays ``val2017``), except that a
YOLO dataset's splits are named by data.yaml's keys, which Ultralytics limits to ``train``/``val``/``test``.

Written by :func:`convert_dataset` (a new folder, which appears only once complete; an existing
non-empty folder is left untouched unless ``overwrite``). Images are hard-linked or copied:

* **COCO**: ``images/<split>/<name>`` + ``annotations/instances_<split>.json`` (``file_name`` is the
  bare name, as in COCO's own files); without splits ``images/<name>`` + ``annotations.json``.
* **VOC**: ``JPEGImages/<name>`` + ``Annotations/<stem>.xml`` + ``ImageSets/Main/<split>.txt`` (and
  the class files of :mod:`convsight.io.voc`).
* **YOLO**: Ultralytics' layout only (darknet/CVAT layouts are read, not written):
  ``images/<split>/<name>`` + ``labels/<split>/<stem>.txt`` + ``data.yaml`` (``path: .``,
  ``train``/``val``/``test``, ``names`` as ``{index: name}``) + ``classes.txt``. A split not named
  train/val/test is listed under the key its name contains (``train2017`` under ``train``, as in
  Ultralytics' coco.yaml). Without splits: ``images/<name>``, and data.yaml's ``train`` and ``val``
  both name ``images``.

When only some images have a split, COCO and YOLO (one folder per split) put the others in the first
split, and say so; VOC leaves them split-less.

What survives a conversion (each loss is reported by :func:`convert_dataset` in one line):

* **Splits** survive every conversion. Images with the same file name in different splits or folders
  never collide: a clashing image is renamed ``<folder>_<name>`` (VOC, whose ids are file stems,
  renames on any stem clash).
* **Image and annotation ids** (COCO): kept into COCO. VOC and YOLO have none (file names are
  kept). Into COCO from a set without image ids, an image whose stem is a number gets that number as
  id (COCO's own naming, ``000000397133.jpg`` is id 397133) when all such stems are distinct numbers,
  else new ids follow the largest one present (``1..N`` when there is none).
* **Category ids and names**: names are always kept, in label order. COCO's category ids are kept
  into COCO; VOC and YOLO have only the order (into COCO from them, ids are ``1..C``).
* **info / licenses**: kept into COCO only.
* **Crowd / ignore regions**: kept into COCO. VOC has no crowd flag: they become difficult objects
  (which VOC mAP ignores, as COCO ignores crowd). YOLO has neither: they are not written.
* **Difficult / truncated** (VOC): kept into VOC. COCO has no such flags: difficult objects become
  ordinary objects. YOLO: difficult objects are not written (as Ultralytics' VOC converter does).
* **Segmentation**: kept into COCO. VOC holds none. YOLO holds one polygon per box: an image whose
  every box has a single polygon matching the box is written as polygon lines, other segmentations
  (RLE, multi-part) are dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from convsight.errors import ConfigError, DatasetError
from convsight.io import voc
from convsight.io.annotations import (
    AnnotationSet,
    ImageAnnotation,
    Problem,
    relative_or_absolute,
)
from convsight.io.coco import DEFAULT_JSON_NAME, read_coco, write_coco
from convsight.io.yolo_layout import is_yolo_dataset, normalise_split
from convsight.io.yolo_txt import read_yolo, write_yolo

Format = Literal["coco", "voc", "yolo"]
FORMATS: tuple[Format, ...] = ("coco", "voc", "yolo")
ROBOFLOW_COCO_JSON = "_annotations.coco.json"
COCO_ANNOTATIONS_DIR = "annotations"


def coco_files(path: Path, loose: bool = True) -> list[tuple[Path, str | None]]:
    """The COCO json files of a dataset folder (or file) with the split each one holds. ``loose``:
    also the one ``.json`` of a folder that has no COCO-named file."""
    if path.is_file():
        return [(path, None)]
    if (path / DEFAULT_JSON_NAME).is_file():
        return [(path / DEFAULT_JSON_NAME, None)]
    if (path / ROBOFLOW_COCO_JSON).is_file():
        return [(path / ROBOFLOW_COCO_JSON, None)]
    instances = sorted((path / COCO_ANNOTATIONS_DIR).glob("instances_*.json"))
    if instances:
        return [(p, p.stem[len("instances_"):]) for p in instances]
    roboflow = sorted(path.glob(f"*/{ROBOFLOW_COCO_JSON}"))
    if roboflow:
        return [(p, normalise_split(p.parent.name)) for p in roboflow]
    single = sorted(path.glob("*.json"))
    return [(single[0], None)] if loose and len(single) == 1 else []


def detect_format(path: str | os.PathLike[str]) -> Format:
    """Guess the format of a dataset folder or file; a :class:`DatasetError` says what was looked for."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return "coco"
    if path.is_file() and is_yolo_dataset(path):
        return "yolo"
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found")
    if not path.is_dir():
        raise DatasetError(f"{path}: expected a dataset folder, a COCO .json, a data.yaml or an obj.data file")
    if coco_files(path, loose=False):
        return "coco"
    if voc.is_voc_dataset(path):
        return "voc"
    if is_yolo_dataset(path):
        return "yolo"
    if coco_files(path):  # a lone .json last: datumaro/CVAT put dataset_meta.json beside other formats
        return "coco"
    raise DatasetError(
        f"{path}: no dataset found (expected {DEFAULT_JSON_NAME}, annotations/instances_*.json, Annotations/, "
        "data.yaml, obj.data or images/ + labels/; see `convsight data synth` to make one)"
    )


def check_format(fmt: str) -> Format:
    """``fmt`` if it is one of :data:`FORMATS`, else a :class:`ConfigError` listing them."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown dataset format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def _image_root(ds: AnnotationSet, json_path: Path, split: str | None) -> Path:
    """Where the images of an ``annotations/instances_<split>.json`` lie (COCO ships them in
    ``<root>/<split>/``; Ultralytics and detectron2 users often use ``<root>/images/<split>/``)."""
    root = json_path.parent.parent
    candidates = [root / split, root / "images" / split] if split else []
    candidates += [root / "images", root, json_path.parent]
    if not ds.images:
        return candidates[0]
    first = relative_or_absolute(ds.images[0].path, json_path.parent)
    return next((c for c in candidates if (c / first).is_file()), json_path.parent)


def _read_coco_file(json_path: Path, split: str | None, problems: list[Problem] | None) -> AnnotationSet:
    ds = read_coco(json_path, problems=problems)
    if json_path.parent.name == COCO_ANNOTATIONS_DIR:
        # instances_val2017.json given by itself still finds val2017/ (its split is left unset)
        hint = split or (json_path.stem[len("instances_"):] if json_path.stem.startswith("instances_") else None)
        root = _image_root(ds, json_path, hint)
        if root != json_path.parent:
            ds = replace(ds, images=tuple(
                replace(im, path=root / relative_or_absolute(im.path, json_path.parent)) for im in ds.images))
    if split is not None:
        ds = replace(ds, images=tuple(replace(im, split=split) for im in ds.images))
    return ds


def _merge_coco(parts: list[AnnotationSet], where: Path) -> AnnotationSet:
    """One set from per-split COCO files; categories are joined by id (a clash of names is an error)."""
    if len(parts) == 1:
        return parts[0]
    cats: dict[int, str] = {}
    for ds in parts:
        for k, name in enumerate(ds.class_names):
            cid = ds.category_id(k)
            if cats.setdefault(cid, name) != name:
                raise DatasetError(f"{where}: category id {cid} is {cats[cid]!r} in one split and {name!r} in another")
    ids = sorted(cats)
    label_of = {cid: k for k, cid in enumerate(ids)}
    images: list[ImageAnnotation] = []
    for ds in parts:
        remap = [label_of[ds.category_id(k)] for k in range(ds.num_classes)]
        images += [replace(im, labels=im.labels.new_tensor(remap)[im.labels] if len(im) else im.labels) for im in ds.images]
    first = parts[0]
    return AnnotationSet(tuple(images), tuple(cats[c] for c in ids), tuple(ids), first.meta, first.provenance)


def read_coco_dataset(path: Path, split: str | None = None, problems: list[Problem] | None = None) -> AnnotationSet:
    """Read a COCO dataset folder or file (see the module docstring for the layouts)."""
    files = coco_files(path)
    if not files:
        raise DatasetError(f"{path}: no COCO json found (annotations.json, annotations/instances_*.json, "
                           f"<split>/{ROBOFLOW_COCO_JSON})")
    available = [s for _, s in files if s is not None]
    if split is not None and available:
        chosen = [(p, s) for p, s in files if s == split or s == normalise_split(split)]
        if not chosen:
            raise DatasetError(f"{path}: no split {split!r}; splits: {', '.join(available)}")
        files = chosen
    ds = _merge_coco([_read_coco_file(p, s, problems) for p, s in files], path)
    layout = "roboflow" if files[0][0].name == ROBOFLOW_COCO_JSON else "instances" if available else "single"
    ds = replace(ds, provenance={**ds.provenance, "format": "coco", "layout": layout, "splits": available,
                                 "files": [str(p) for p, _ in files]})
    return ds.split(split) if split is not None and not available else ds


def read_dataset(path: str | os.PathLike[str], fmt: str | None = None, split: str | None = None,
                 problems: list[Problem] | None = None) -> AnnotationSet:
    """Read a dataset in any of the three formats (detected when ``fmt`` is None).

    ``split`` selects one split (a :class:`DatasetError` lists those there are); with ``problems``
    given, the readers record recoverable problems there and skip the bad record (``data validate``).
    """
    path = Path(path)
    fmt = check_format(fmt) if fmt else detect_format(path)
    if fmt == "coco":
        return read_coco_dataset(path, split, problems)
    if fmt == "voc":
        return voc.read_voc(path, split=split, problems=problems)
    return read_yolo(path, split=split, problems=problems)


def write_dataset(ds: AnnotationSet, root: str | os.PathLike[str], fmt: str) -> Path:
    """Write the annotations of ``ds`` into ``root`` in ``fmt`` (images are not moved)."""
    root = Path(root)
    writers: dict[str, Callable[[AnnotationSet, Path], Path]] = {
        "coco": lambda d, r: write_coco(d, r / DEFAULT_JSON_NAME),
        "voc": voc.write_voc,
        "yolo": write_yolo,
    }
    return writers[check_format(fmt)](ds, root)


# re-exported, so that formats stays the one entry point
from convsight.io.convert import Conversion, convert_dataset

__all__ = ["FORMATS", "Conversion", "Format", "convert_dataset", "detect_format", "read_dataset", "write_dataset"]
