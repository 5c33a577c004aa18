"""YOLO txt labels: read in any layout of :mod:`convsight.io.yolo_layout`, write Ultralytics' layout.

Each label line is ``class cx cy w h`` normalised by the image size (the one place the package stores
``cxcywh``), or an Ultralytics segmentation line ``class x1 y1 x2 y2 ... xn yn`` (an odd number of
fields, at least 7): a normalised polygon. A polygon becomes its bounding box; the polygon itself is
kept as a COCO-style segmentation in pixels (``[[x1, y1, ...]]``) with its area, and
``provenance["polygon_lines"]`` counts such lines. A 6-field line is refused: it is a predictions
file (``class cx cy w h conf``), not labels. With ``kpt_shape`` in data.yaml (pose), the box is the
first five fields. Values are computed in float64 and written with full precision, so float32 pixel
boxes come back bit for bit. An image without a label file, or with an empty one, has no boxes. Image
sizes are read from the image headers (YOLO files do not store them).

Writing (:func:`write_yolo`) produces Ultralytics' layout: ``labels/<...>.txt`` for images under
``root/images/<...>``, a ``data.yaml`` (``path: .``, ``train``/``val``/``test``, ``names`` as an
``{index: name}`` mapping) and ``classes.txt``. YOLO has no crowd, ignore or difficult flag: such boxes
are not written (Ultralytics' own VOC converter drops difficult objects too).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from convsight.errors import DatasetError, ImageError
from convsight.io import atomic
from convsight.io.annotations import (
    AnnotationSet,
    ImageAnnotation,
    Problem,
    image_problems,
)
from convsight.io.class_names import write_class_names
from convsight.io.images import image_size
from convsight.io.yolo_layout import (
    SPLIT_KEYS,
    YAML_NAMES,
    YoloLayout,
    find_label,
    find_layout,
    label_path_for,
    normalise_split,
    yaml_module,
)

IMAGES_DIR = "images"
LABELS_DIR = "labels"
DATA_YAML = YAML_NAMES[0]

Parsed = tuple[list[list[float]], list[int], list[object], list[float], list[int]]  # boxes, labels, segs, areas, lines


def _polygon_area(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2.0


def _bad(where: str, reason: str, problems: list[Problem] | None) -> None:
    if problems is None:
        raise DatasetError(f"{where}: {reason}")
    problems.append(Problem(where, reason))


def parse_label_file(path: Path, width: int, height: int, num_classes: int | None, keypoints: bool = False,
                     problems: list[Problem] | None = None) -> tuple[Parsed, int]:
    """Boxes (xyxy pixels), labels, segmentations, areas and line numbers of one label file, and the
    number of polygon lines. ``num_classes`` None: any class index >= 0 is accepted."""
    boxes: list[list[float]] = []
    labels: list[int] = []
    segs: list[object] = []
    areas: list[float] = []
    line_nos: list[int] = []
    polygons = 0
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _bad(str(path), "not a UTF-8 text file", problems)
        return (boxes, labels, segs, areas, line_nos), 0
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{n}"
        k = len(parts)
        if k == 6 and not keypoints:
            _bad(where, "6 fields look like a predictions file ('class cx cy w h conf'), not labels", problems)
            continue
        if k != 5 and not keypoints and (k < 7 or k % 2 == 0):
            _bad(where, f"expected 'class cx cy w h' or a polygon 'class x1 y1 ... xn yn', got {k} fields", problems)
            continue
        try:
            label = int(parts[0])
            values = [float(v) for v in parts[1:]]
        except ValueError:
            _bad(where, f"not numbers: {line.strip()!r}", problems)
            continue
        if label < 0 or num_classes is not None and label >= num_classes:
            _bad(where, f"class {label} out of range for {num_classes} classes", problems)
            continue
        if k == 5 or keypoints:
            cx, cy, w, h = values[:4]
            boxes.append([(cx - w / 2.0) * width, (cy - h / 2.0) * height, (cx + w / 2.0) * width, (cy + h / 2.0) * height])
            segs.append(None)
            areas.append(math.nan)
        else:
            xs = [v * width for v in values[0::2]]
            ys = [v * height for v in values[1::2]]
            boxes.append([min(xs), min(ys), max(xs), max(ys)])
            segs.append([[c for xy in zip(xs, ys, strict=True) for c in xy]])
            areas.append(_polygon_area(xs, ys))
            polygons += 1
        labels.append(label)
        line_nos.append(n)
    return (boxes, labels, segs, areas, line_nos), polygons


def _image(path: Path, width: int, height: int, parsed: Parsed, split: str | None) -> ImageAnnotation:
    boxes, labels, segs, areas, _ = parsed
    return ImageAnnotation(
        path=path, width=width, height=height,
        boxes=torch.tensor(boxes, dtype=torch.float64).to(torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        areas=torch.tensor(areas, dtype=torch.float64), segmentations=tuple(segs), split=split,
    )


def _checked(im: ImageAnnotation, names: tuple[str, ...], label_file: Path, line_nos: list[int],
             problems: list[Problem] | None) -> ImageAnnotation:
    """Raise on the first bad box, or (with ``problems``) record each and drop it."""
    if not image_problems(im, names):  # the common case, checked in one pass
        return im
    keep = []
    for i, n in enumerate(line_nos):
        found = image_problems(im.select([i]), names, where=f"{label_file}:{n}")
        if found and problems is None:
            raise DatasetError(str(found[0]))
        if found:
            problems.extend(found)
        else:
            keep.append(i)
    return im if len(keep) == len(im) else im.select(keep)


def read_yolo(root: str | os.PathLike[str], split: str | None = None,
              problems: list[Problem] | None = None) -> AnnotationSet:
    """Read a YOLO dataset: a folder in any layout :func:`~convsight.io.yolo_layout.find_layout`
    knows, or its data.yaml / obj.data. ``split`` selects one split (``valid`` means ``val``).

    With ``problems`` given, out-of-range classes, bad lines, bad boxes, unreadable images and images a
    list file names but that do not exist are appended there and skipped instead of raising.
    """
    layout = find_layout(root, problems)
    sources = layout.splits
    if split is not None:
        have = [s.name for s in sources if s.name is not None]
        sources = tuple(s for s in sources if s.name == normalise_split(split))
        if not sources:
            raise DatasetError(f"{root}: no split {split!r}; splits: {', '.join(have) or 'none (this dataset has no splits)'}")
    names = layout.class_names
    raw: list[tuple[ImageAnnotation, Path, list[int]]] = []
    polygons, seen = 0, set()
    for source in sources:
        for listed, line in source.missing:
            _bad(listed, f"lists {line}, which does not exist", problems)
        for image in source.images:
            key = os.path.abspath(image)
            if key in seen:  # the same image listed twice, or in two splits: the first one wins
                continue
            seen.add(key)
            try:
                width, height = image_size(image)
            except ImageError as e:
                _bad(str(image), str(e), problems)
                continue
            label_file = find_label(image)
            parsed: Parsed = ([], [], [], [], [])
            if label_file is not None:
                parsed, p = parse_label_file(label_file, width, height, len(names) if names else None,
                                             layout.keypoints, problems)
                polygons += p
            raw.append((_image(image, width, height, parsed, source.name), label_file or image, parsed[4]))
    names_from = layout.class_names_from
    if names is None:  # no names anywhere: number the classes the labels use
        top = max((int(im.labels.max()) for im, _, _ in raw if len(im)), default=-1)
        names, names_from = tuple(str(i) for i in range(top + 1)), "label indices (no names file)"
    images = tuple(_checked(im, names, lf, lines, problems) for im, lf, lines in raw)
    provenance = {"format": "yolo", "layout": layout.layout, "root": str(layout.root),
                  "config": str(layout.config) if layout.config else None,
                  "class_names_from": names_from, "polygon_lines": polygons,
                  "splits": [s.name for s in layout.splits if s.name is not None]}
    return AnnotationSet(images=images, class_names=names, provenance=provenance)


def _polygon_for(im: ImageAnnotation, i: int) -> list[float] | None:
    """Box ``i``'s polygon when it is a single COCO polygon whose extent is the box (so that reading
    the polygon line back gives the same box), else None."""
    seg = im.segmentations[i]  # type: ignore[index]
    if not (isinstance(seg, list) and len(seg) == 1 and isinstance(seg[0], list) and len(seg[0]) >= 6
            and len(seg[0]) % 2 == 0):
        return None
    xs, ys = seg[0][0::2], seg[0][1::2]
    extent = torch.tensor([min(xs), min(ys), max(xs), max(ys)], dtype=torch.float64).to(torch.float32)
    if not torch.equal(extent, im.boxes[i]):  # else the box read back would not be the box written
        return None
    return [float(v) for v in seg[0]]


def label_lines(im: ImageAnnotation) -> str:
    """The label file text of one image. Crowd, ignored and difficult boxes are left out (YOLO cannot
    mark them); an image whose every box has a matching polygon is written as polygon lines."""
    keep = [i for i in range(len(im)) if not (bool(im.ignored[i]) or bool(im.difficult[i]))]  # type: ignore[index]
    polys = [_polygon_for(im, i) for i in keep]
    as_polygons = bool(keep) and all(p is not None for p in polys)
    lines = []
    for i, poly in zip(keep, polys, strict=True):
        label = int(im.labels[i])
        if as_polygons:
            coords = [v / (im.width if j % 2 == 0 else im.height) for j, v in enumerate(poly)]  # type: ignore[arg-type]
            lines.append(f"{label} " + " ".join(repr(c) for c in coords) + "\n")
            continue
        x1, y1, x2, y2 = im.boxes[i].double().tolist()
        cx, cy = (x1 + x2) / 2.0 / im.width, (y1 + y2) / 2.0 / im.height
        w, h = (x2 - x1) / im.width, (y2 - y1) / im.height
        lines.append(f"{label} {cx!r} {cy!r} {w!r} {h!r}\n")
    return "".join(lines)


def _data_yaml(ds: AnnotationSet, root: Path) -> str:
    img_root = Path(os.path.abspath(root / IMAGES_DIR))
    doc: dict[str, object] = {"path": "."}
    splits = ds.splits
    if not splits:
        doc.update(train=IMAGES_DIR, val=IMAGES_DIR)  # Ultralytics needs both keys
    entries: dict[str, list[str]] = {}
    for s in splits:
        members = [Path(os.path.abspath(im.path)) for im in ds.images if (im.split or splits[0]) == s]
        if all(img_root / s in p.parents for p in members):
            entry = f"{IMAGES_DIR}/{s}"
        else:  # not in a per-split folder: list the images ('./' is relative to the list file)
            rel = [p.relative_to(os.path.abspath(root)).as_posix() for p in members]
            atomic.write_text(root / f"{s}.txt", "".join(f"./{r}\n" for r in rel))
            entry = f"{s}.txt"
        # Ultralytics reads only train/val/test: COCO's train2017 goes under train, as in its coco.yaml
        key = s if s in SPLIT_KEYS else next((k for k in SPLIT_KEYS if k in s), "train")
        entries.setdefault(key, []).append(entry)
    for key in SPLIT_KEYS:
        if key in entries:
            doc[key] = entries[key][0] if len(entries[key]) == 1 else entries[key]
    if splits and "val" not in doc:
        doc["val"] = doc.get("test", doc.get("train"))  # Ultralytics refuses a data.yaml without val
    doc["names"] = dict(enumerate(ds.class_names))
    return yaml_module().safe_dump(doc, sort_keys=False, allow_unicode=True)


def write_yolo(ds: AnnotationSet, root: str | os.PathLike[str]) -> Path:
    """Write ``root/labels/**.txt``, ``root/data.yaml`` and ``root/classes.txt`` for images that lie
    under ``root/images`` (``images/<split>/`` when the set has splits: see :mod:`convsight.io.formats`)."""
    root = Path(root)
    img_root = Path(os.path.abspath(root / IMAGES_DIR))
    for im in ds.images:
        if img_root not in Path(os.path.abspath(im.path)).parents:
            raise DatasetError(f"{im.path}: the YOLO layout needs images under {root / IMAGES_DIR} "
                               "(use `convsight data convert`, which copies them there)")
    targets: dict[Path, Path] = {}
    for im in ds.images:
        label = label_path_for(Path(os.path.abspath(im.path)))
        if label in targets:
            raise DatasetError(f"{im.path}: same label file {label} as {targets[label]} (same name, other suffix)")
        targets[label] = im.path
    for im in ds.images:
        atomic.write_text(label_path_for(Path(os.path.abspath(im.path))), label_lines(im))
    atomic.write_text(root / DATA_YAML, _data_yaml(ds, root))
    write_class_names(root, ds.class_names)
    return root


__all__ = ["DATA_YAML", "IMAGES_DIR", "LABELS_DIR", "YoloLayout", "label_lines", "read_yolo", "write_yolo"]
