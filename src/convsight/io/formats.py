"""One entry point for the three dataset formats: detect, read, write and convert.

Layouts (``ROOT`` is the dataset folder):

* ``coco``: ``ROOT/annotations.json`` (or any ``.json`` file given directly), image paths relative to
  its folder.
* ``voc``:  ``ROOT/Annotations/*.xml`` + ``ROOT/classes.txt``.
* ``yolo``: ``ROOT/images/**`` + ``ROOT/labels/**.txt`` + ``ROOT/classes.txt``.

The same image folder can carry all three at once (``convsight data synth`` puts images in
``ROOT/images``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from convsight.errors import ConfigError, DatasetError
from convsight.io.annotations import AnnotationSet
from convsight.io.atomic import atomic_dir
from convsight.io.coco import DEFAULT_JSON_NAME, read_coco, write_coco
from convsight.io.voc import ANNOTATIONS_DIR, read_voc, write_voc
from convsight.io.yolo_txt import IMAGES_DIR, LABELS_DIR, read_yolo, write_yolo

Format = Literal["coco", "voc", "yolo"]
FORMATS: tuple[Format, ...] = ("coco", "voc", "yolo")


def detect_format(path: str | os.PathLike[str]) -> Format:
    """Guess the format of a dataset folder or file; a :class:`DatasetError` says what was looked for."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return "coco"
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found")
    if not path.is_dir():
        raise DatasetError(f"{path}: expected a dataset folder or a COCO .json file")
    if (path / DEFAULT_JSON_NAME).is_file():
        return "coco"
    if (path / ANNOTATIONS_DIR).is_dir():
        return "voc"
    if (path / LABELS_DIR).is_dir():
        return "yolo"
    raise DatasetError(
        f"{path}: no dataset found (expected {DEFAULT_JSON_NAME}, {ANNOTATIONS_DIR}/ or {LABELS_DIR}/; "
        "see `convsight data synth` to make one)"
    )


def _check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown dataset format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def read_dataset(path: str | os.PathLike[str], fmt: str | None = None) -> AnnotationSet:
    """Read a dataset in any of the three formats (detected when ``fmt`` is None)."""
    path = Path(path)
    fmt = _check_format(fmt) if fmt else detect_format(path)
    if fmt == "coco":
        return read_coco(path if path.suffix.lower() == ".json" else path / DEFAULT_JSON_NAME)
    if fmt == "voc":
        return read_voc(path)
    return read_yolo(path)


def write_dataset(ds: AnnotationSet, root: str | os.PathLike[str], fmt: str) -> Path:
    """Write the annotations of ``ds`` into ``root`` in ``fmt`` (images are not moved)."""
    root = Path(root)
    writers: dict[str, Callable[[AnnotationSet, Path], Path]] = {
        "coco": lambda d, r: write_coco(d, r / DEFAULT_JSON_NAME),
        "voc": write_voc,
        "yolo": write_yolo,
    }
    return writers[_check_format(fmt)](ds, root)


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # cheap when on the same file system
    except OSError:
        shutil.copy2(src, dst)


def convert_dataset(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], to: str, src_format: str | None = None, overwrite: bool = False
) -> AnnotationSet:
    """Copy a dataset into a new folder ``dst`` in format ``to``; images go to ``dst/images/``.

    The folder appears only when complete. Returns the annotations as written (paths under ``dst``).
    """
    to = _check_format(to)
    ds = read_dataset(src, src_format)
    dst = Path(dst)
    with atomic_dir(dst, overwrite=overwrite) as tmp:
        placed = []
        used: set[str] = set()
        for i, im in enumerate(ds.images):
            if not im.path.is_file():
                raise DatasetError(f"{im.path}: image file not found (referenced by {src})")
            name = im.path.name if im.path.name not in used else f"{i:06d}_{im.path.name}"
            used.add(name)
            _place(im.path, tmp / IMAGES_DIR / name)
            placed.append(replace(im, path=tmp / IMAGES_DIR / name))
        write_dataset(replace(ds, images=tuple(placed)), tmp, to)
    return replace(ds, images=tuple(replace(im, path=dst / IMAGES_DIR / im.path.name) for im in placed))
