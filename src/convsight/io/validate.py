"""Everything suspicious in a dataset, as one :class:`~convsight.io.annotations.Problem` each
(``convsight data validate``).

The readers report what only they can see while parsing (an unknown category or class, a duplicate
image id, a line or record they cannot parse) by appending to a ``problems`` list and skipping that
record. This module reads the dataset that way and then checks what the in-memory model shows:

- boxes that are non-finite, of zero or negative size, or outside their image (beyond
  :data:`~convsight.io.annotations.OUTSIDE_TOLERANCE`), and labels out of range
  (:func:`~convsight.io.annotations.image_problems`);
- image ids and annotation ids used twice within one split (pycocotools keeps only the last one of
  each), and one image file listed twice;
- image files that do not exist, cannot be read, or whose header size differs from the annotated
  size (a size turned by 90 degrees is accepted: tools disagree on EXIF rotation);
- image files in the dataset's image folders that no annotation file mentions: COCO images not in the
  json, VOC ``JPEGImages/`` files without an XML, images missing from a YOLO list file.

Decisions:

- YOLO: an image without a label file is an empty image, not a problem. Ultralytics documents such
  "background images" as the way to add negatives, and the YOLO readers include every image.
- Image folders are the folders that hold the dataset's images (plus VOC's ``JPEGImages/``), scanned
  one level deep, so that unrelated sub-folders are not reported.
- An image file that a reader's problem names (a COCO image record skipped for its duplicate id) is
  not reported again as unmentioned; nor is a VOC image whose XML exists but could not be read.
- With ``split``, only that split's images are checked, but an image counts as mentioned when any
  split mentions it (a VOC ``JPEGImages/`` folder holds every split's images).
- ``convsight data validate`` exits 1 when anything was found (findings, as a linter reports them) and
  2 only when the path cannot be read as a dataset at all (a user error, as everywhere in convsight).
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from convsight.errors import DatasetError, ImageError
from convsight.io.annotations import AnnotationSet, ImageAnnotation, Problem, image_problems
from convsight.io.formats import coco_files, read_dataset
from convsight.io.images import IMAGE_EXTENSIONS, image_size
from convsight.io.yolo_layout import find_label


@dataclass(frozen=True)
class Validation:
    """What :func:`check_dataset` found: the set as read (bad records skipped) and the problems."""

    dataset: AnnotationSet
    problems: tuple[Problem, ...]


def validate_dataset(path: str | os.PathLike[str], fmt: str | None = None, split: str | None = None) -> list[Problem]:
    """Every suspicious thing in the dataset at ``path`` (see the module docstring), grouped by file.

    Raises :class:`DatasetError` only when ``path`` cannot be read as a dataset at all.
    """
    return list(check_dataset(path, fmt, split).problems)


def check_dataset(path: str | os.PathLike[str], fmt: str | None = None, split: str | None = None) -> Validation:
    """Like :func:`validate_dataset`, and also returns the set as read (for the image count)."""
    path = Path(path)
    found: list[Problem] = []
    ds = read_dataset(path, fmt, split=split, problems=found)
    fmt = str(ds.provenance.get("format") or fmt or "")
    whole = ds if split is None else _whole(path, fmt, ds)
    found += set_problems(ds, path, fmt, whole=whole, reported=found)
    return Validation(ds, tuple(_grouped(found)))


def set_problems(
    ds: AnnotationSet, path: Path, fmt: str, whole: AnnotationSet | None = None, reported: Iterable[Problem] = ()
) -> list[Problem]:
    """The problems the in-memory set shows (the module docstring's list), for a set read from
    ``path`` in format ``fmt``. ``whole``: the set with every split (default ``ds``), for the image
    files any annotation mentions; ``reported``: what the reader already said (not said twice)."""
    where = annotation_files(ds, fmt, path)
    reported = list(reported)
    return (_box_problems(ds, where, reported) + _duplicates(ds, where) + _image_file_problems(ds, where)
            + _unmentioned(ds, ds if whole is None else whole, fmt, path, reported))


def annotation_files(ds: AnnotationSet, fmt: str, path: Path) -> dict[ImageAnnotation, str]:
    """For each image, the file a user opens to fix its boxes: its VOC XML, YOLO label
    file, or COCO json (with the image's name); the image itself when that file cannot be found."""
    jsons = {split: f for f, split in coco_files(path)} if fmt == "coco" and path.exists() else {}
    out: dict[ImageAnnotation, str] = {}
    for im in ds.images:
        if fmt == "coco":
            json = jsons.get(im.split) or (next(iter(jsons.values())) if len(jsons) == 1 else None)
            out[im] = f"{json} ({im.path.name})" if json is not None else str(im.path)
            continue
        if fmt == "voc":
            candidates = [im.path.parent.parent / "Annotations" / f"{im.path.stem}.xml",
                          path / "Annotations" / f"{im.path.stem}.xml"]
        else:  # YOLO: where the reader found it (Ultralytics' labels/, darknet's beside the image, ...)
            candidates = [label] if (label := find_label(im.path)) is not None else []
        out[im] = str(next((c for c in candidates if c.is_file()), im.path))
    return out


def _whole(path: Path, fmt: str, part: AnnotationSet) -> AnnotationSet:
    """The dataset with every split, to know which image files any annotation mentions."""
    try:
        return read_dataset(path, fmt or None, problems=[])
    except DatasetError:
        return part


def _box_problems(ds: AnnotationSet, where: dict[ImageAnnotation, str], reported: Iterable[Problem]) -> list[Problem]:
    # A reader that checks boxes itself may already have reported one (under its own spelling of
    # the file): the same reason about the same file is said once.
    said = {(p.reason, _file_key(p.file)) for p in reported}
    return [p for im in ds.images for p in image_problems(im, ds.class_names, where[im])
            if (p.reason, _file_key(p.file)) not in said]


def _file_key(file: str) -> str:
    """``'a/annotations.json (images/x.jpg)'`` -> ``'x.jpg'``; ``'a/labels/b.txt:3'`` -> ``'b.txt'``."""
    if file.endswith(")") and " (" in file:
        file = file[file.rindex(" (") + 2:-1]
    return re.sub(r":\d+$", "", Path(file).name)


def _duplicates(ds: AnnotationSet, where: dict[ImageAnnotation, str]) -> list[Problem]:
    out: list[Problem] = []
    by_split: dict[str | None, list[ImageAnnotation]] = defaultdict(list)
    for im in ds.images:
        by_split[im.split].append(im)
    for images in by_split.values():
        ids: dict[int, list[ImageAnnotation]] = defaultdict(list)
        for im in images:
            if im.image_id is not None:
                ids[im.image_id].append(im)
        for iid, ims in ids.items():
            if len(ims) > 1:
                names = ", ".join(im.path.name for im in ims)
                out.append(Problem(where[ims[0]], f"duplicate image id {iid} ({len(ims)} images: {names})"))
        box_ids = Counter(int(b) for im in images for b in im.box_ids.tolist() if b != -1)  # type: ignore[union-attr]
        for bid, n in box_ids.items():
            if n > 1:
                first = next(im for im in images if bid in im.box_ids.tolist())  # type: ignore[union-attr]
                out.append(Problem(where[first], f"duplicate annotation id {bid} (used {n} times)"))
    listed = Counter(os.path.abspath(im.path) for im in ds.images)
    for p, n in listed.items():
        if n > 1:
            out.append(Problem(p, f"image listed {n} times"))
    return out


def _image_file_problems(ds: AnnotationSet, where: dict[ImageAnnotation, str]) -> list[Problem]:
    out = []
    for im in ds.images:
        if not im.path.is_file():
            source = where[im].removesuffix(f" ({im.path.name})")
            named_in = f" (named in {source})" if source != str(im.path) else ""
            out.append(Problem(str(im.path), f"image file not found{named_in}"))
            continue
        try:
            w, h = image_size(im.path)
        except ImageError as e:
            out.append(Problem(str(im.path), str(e).removeprefix(f"{im.path}: ")))
            continue
        if (im.width, im.height) not in ((w, h), (h, w)):
            out.append(Problem(where[im], f"annotated size {im.width}x{im.height} but {im.path.name} is {w}x{h}"))
    return out


def _unmentioned(ds: AnnotationSet, whole: AnnotationSet, fmt: str, path: Path, reported: list[Problem]) -> list[Problem]:
    mentioned = {os.path.abspath(im.path) for im in whole.images}
    # A file that a reader's problem names (a COCO image skipped for its duplicate id) is mentioned.
    named = {word for p in reported for word in re.findall(r"[^\s/\\(),:;'\"]+", str(p))}
    folders = {im.path.parent for im in ds.images}
    if fmt == "voc":
        root = path if path.is_dir() else path.parent
        folders |= {root / "JPEGImages"} | set(root.glob("*/JPEGImages"))
    elif fmt == "coco" and not ds.images:
        folders.add((path.parent if path.is_file() else path) / "images")
    reason = {
        "coco": "image file not listed in the COCO json",
        "voc": "image file has no XML in Annotations/",
    }.get(fmt, "image file not listed in any of the dataset's image lists")
    out = []
    for folder in sorted(f for f in folders if f.is_dir()):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in IMAGE_EXTENSIONS or not f.is_file() or os.path.abspath(f) in mentioned:
                continue
            if f.name in named:
                continue
            if fmt == "voc" and (f.parent.parent / "Annotations" / f"{f.stem}.xml").is_file():
                continue  # its XML exists but could not be read: that problem is already reported
            out.append(Problem(str(f), reason))
    return out


def _grouped(problems: list[Problem]) -> list[Problem]:
    """Each problem once, grouped by file (files in first-seen order, reasons in the order found)."""
    order: dict[str, list[Problem]] = {}
    seen: set[Problem] = set()
    for p in problems:
        if p not in seen:
            seen.add(p)
            order.setdefault(p.file, []).append(p)
    return [p for group in order.values() for p in group]
