"""YOLO txt: ``images/<name>.<ext>`` with ``labels/<name>.txt`` beside it and ``classes.txt``.

Each label line is ``class cx cy w h`` normalised by the image size (the one place the package stores
``cxcywh``). Values are computed in float64 and written with full precision, so float32 pixel boxes
come back bit for bit. An image without a label file, or with an empty one, has no boxes. Image sizes
are read from the image headers (YOLO files do not store them).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from convsight.errors import DatasetError
from convsight.io import atomic
from convsight.io.annotations import AnnotationSet, ImageAnnotation, validate_image
from convsight.io.class_names import read_class_names, write_class_names
from convsight.io.images import IMAGE_EXTENSIONS, image_size

IMAGES_DIR = "images"
LABELS_DIR = "labels"


def label_path_for(image: Path, root: Path) -> Path:
    """``root/images/a/b.jpg`` -> ``root/labels/a/b.txt`` (the YOLO convention)."""
    try:
        rel = Path(os.path.abspath(image)).relative_to(os.path.abspath(root / IMAGES_DIR))
    except ValueError:
        raise DatasetError(
            f"{image}: the YOLO layout needs images under {root / IMAGES_DIR} "
            "(use `convsight data convert`, which copies them there)"
        ) from None
    return root / LABELS_DIR / rel.with_suffix(".txt")


def write_yolo(ds: AnnotationSet, root: str | os.PathLike[str]) -> Path:
    """Write ``root/labels/**.txt`` and ``root/classes.txt`` for images that lie under ``root/images``."""
    root = Path(root)
    for im in ds.images:
        lines = []
        for box, label in zip(im.boxes.double().tolist(), im.labels.tolist(), strict=True):
            x1, y1, x2, y2 = box
            cx, cy = (x1 + x2) / 2.0 / im.width, (y1 + y2) / 2.0 / im.height
            w, h = (x2 - x1) / im.width, (y2 - y1) / im.height
            lines.append(f"{label} {cx!r} {cy!r} {w!r} {h!r}\n")
        atomic.write_text(label_path_for(im.path, root), "".join(lines))
    write_class_names(root, ds.class_names)
    return root


def _parse_label_file(path: Path, width: int, height: int, num_classes: int) -> tuple[list[list[float]], list[int]]:
    boxes: list[list[float]] = []
    labels: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file") from None
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{n}"
        if len(parts) != 5:
            raise DatasetError(f"{where}: expected 'class cx cy w h', got {len(parts)} fields")
        try:
            label = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise DatasetError(f"{where}: not numbers: {line.strip()!r}") from None
        if not 0 <= label < num_classes:
            raise DatasetError(f"{where}: class {label} out of range for {num_classes} classes")
        boxes.append([(cx - w / 2.0) * width, (cy - h / 2.0) * height, (cx + w / 2.0) * width, (cy + h / 2.0) * height])
        labels.append(label)
    return boxes, labels


def read_yolo(root: str | os.PathLike[str]) -> AnnotationSet:
    """Read a YOLO-layout folder; every image under ``root/images`` is included, labelled or not."""
    root = Path(root)
    img_dir = root / IMAGES_DIR
    if not (root / LABELS_DIR).is_dir() or not img_dir.is_dir():
        raise DatasetError(f"{root}: not a YOLO dataset (needs {IMAGES_DIR}/ and {LABELS_DIR}/ folders)")
    class_names = read_class_names(root)
    if class_names is None:
        raise DatasetError(f"{root}: missing classes.txt (one class name per line, in label order)")
    images = sorted(p for p in img_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    out = []
    for image in images:
        width, height = image_size(image)
        label_file = label_path_for(image, root)
        boxes, labels = (
            _parse_label_file(label_file, width, height, len(class_names)) if label_file.is_file() else ([], [])
        )
        im = ImageAnnotation(
            path=image,
            width=width,
            height=height,
            boxes=torch.tensor(boxes, dtype=torch.float64).to(torch.float32).reshape(-1, 4),
            labels=torch.tensor(labels, dtype=torch.int64),
        )
        validate_image(im, class_names, where=str(label_file))
        out.append(im)
    return AnnotationSet(images=tuple(out), class_names=class_names)
