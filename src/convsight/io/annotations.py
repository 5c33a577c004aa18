"""The one in-memory annotation model that every dataset format reads into and writes from.

An :class:`AnnotationSet` is an ordered list of :class:`ImageAnnotation` plus the class names. Boxes
are ``xyxy`` float32 tensors in absolute pixels, labels are 0-based indices into ``class_names``.
Images with no boxes are ordinary members (``boxes`` of shape ``(0, 4)``).

What other tools write next to a box is kept, one aligned ``(N,)`` column per attribute, so that a
conversion or an evaluation can honour it:

- ``crowd``: COCO ``iscrowd=1``. A crowd region is an *ignore region*, never an ordinary object:
  detections that fall in it are neither right nor wrong (pycocotools' rule), it counts toward no
  recall, and training does not use it as a target.
- ``ignore``: COCO's optional ``ignore`` key (kept; see :mod:`convsight.detection.metrics` for how
  scoring treats it).
- ``difficult`` / ``truncated``: Pascal VOC's flags. VOC mAP ignores difficult objects.
- ``areas``: COCO's ``area`` (the mask area, usually smaller than the box); NaN where the file gave
  none. It, not the box, decides small/medium/large, as in pycocotools.
- ``segmentations``: COCO polygons or RLE as read, per box (None where there is none).
- ``box_ids``: the file's annotation ids (-1 where there are none).

Per image, ``image_id`` (the file's own id) and ``split`` (``train``/``val``/... where the layout has
splits) survive conversions; ``extra`` keeps other per-image fields a format carries (COCO's
``license``, ``coco_url``, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from convsight.errors import DatasetError

# Boxes may poke this far (pixels) outside the image before a reader calls the file broken: many
# real annotation tools round outwards by a pixel.
OUTSIDE_TOLERANCE = 1.0

_FLAGS = ("crowd", "ignore", "difficult", "truncated")


@dataclass(frozen=True)
class Problem:
    """One suspicious thing in a dataset, for ``convsight data validate``: the file it is in and a
    one-line reason. Readers given a ``problems`` list append these (and skip the bad record)
    instead of raising on the first one."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass(frozen=True, eq=False)
class ImageAnnotation:
    """One image and its boxes.

    path: the image file (absolute or relative to the working directory);
    width, height: image size in pixels; boxes: ``(N, 4)`` float32 xyxy; labels: ``(N,)`` int64;
    crowd, ignore, difficult, truncated: ``(N,)`` bool (default all False); areas: ``(N,)`` float64
    (default NaN: use the box area); segmentations: N entries or None; box_ids: ``(N,)`` int64
    (default -1); image_id: the source file's id or None; split: the split's name or None;
    extra: other per-image fields of the source format.
    """

    path: Path
    width: int
    height: int
    boxes: Tensor
    labels: Tensor
    crowd: Tensor | None = None
    ignore: Tensor | None = None
    difficult: Tensor | None = None
    truncated: Tensor | None = None
    areas: Tensor | None = None
    segmentations: tuple[Any, ...] | None = None
    box_ids: Tensor | None = None
    image_id: int | None = None
    split: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        boxes = torch.as_tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        n = boxes.shape[0]
        if n != labels.shape[0]:
            raise DatasetError(f"{self.path}: {n} boxes but {labels.shape[0]} labels")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels)
        for name in _FLAGS:
            value = getattr(self, name)
            flag = torch.zeros(n, dtype=torch.bool) if value is None else torch.as_tensor(value, dtype=torch.bool).reshape(-1)
            object.__setattr__(self, name, flag)
        areas = torch.full((n,), math.nan, dtype=torch.float64) if self.areas is None else \
            torch.as_tensor(self.areas, dtype=torch.float64).reshape(-1)
        object.__setattr__(self, "areas", areas)
        ids = torch.full((n,), -1, dtype=torch.int64) if self.box_ids is None else \
            torch.as_tensor(self.box_ids, dtype=torch.int64).reshape(-1)
        object.__setattr__(self, "box_ids", ids)
        segs = (None,) * n if self.segmentations is None else tuple(self.segmentations)
        object.__setattr__(self, "segmentations", segs)
        for name in (*_FLAGS, "areas", "box_ids", "segmentations"):
            if len(getattr(self, name)) != n:
                raise DatasetError(f"{self.path}: {n} boxes but {len(getattr(self, name))} {name} entries")
        object.__setattr__(self, "extra", dict(self.extra))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def ignored(self) -> Tensor:
        """``(N,)`` bool: boxes that are not ordinary objects (crowd regions or ``ignore``-marked)."""
        return self.crowd | self.ignore  # type: ignore[operator]

    def box_areas(self) -> Tensor:
        """``(N,)`` float64: the file's ``area`` where it gave one, else the box area (as pycocotools)."""
        b = self.boxes.double()
        box = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return torch.where(torch.isnan(self.areas), box, self.areas)  # type: ignore[arg-type]

    def select(self, keep: Tensor | Sequence[int]) -> ImageAnnotation:
        """The same image with only the boxes ``keep`` (a bool mask or indices), every column aligned."""
        idx = torch.as_tensor(keep)
        # An empty list becomes a float tensor, which cannot index: indices are int64 whatever came in.
        idx = idx.nonzero().flatten() if idx.dtype == torch.bool else idx.to(torch.int64).reshape(-1)
        rows = idx.tolist()
        return replace(
            self, boxes=self.boxes[idx], labels=self.labels[idx],
            **{name: getattr(self, name)[idx] for name in (*_FLAGS, "areas", "box_ids")},
            segmentations=tuple(self.segmentations[i] for i in rows),  # type: ignore[index]
        )

    def same_as(self, other: ImageAnnotation) -> bool:
        """Exact equality of path (after resolving), size, boxes (bit for bit), labels and flags."""
        return (
            _resolved(self.path) == _resolved(other.path)
            and (self.width, self.height) == (other.width, other.height)
            and torch.equal(self.boxes, other.boxes)
            and torch.equal(self.labels, other.labels)
            and all(torch.equal(getattr(self, f), getattr(other, f)) for f in _FLAGS)
        )


@dataclass(frozen=True, eq=False)
class AnnotationSet:
    """An ordered collection of annotated images with their class names.

    category_ids: the source file's category id of each label (COCO ids are often not 1..C: COCO
    itself skips 12, 26, ...), or None; writers then use ``1..C``. meta: format-level records that a
    conversion carries (``info``, ``licenses``, per-category ``supercategory``). provenance: how the
    set was read, for ``convsight data info`` (``format``, ``layout``, ``class_names_from``,
    ``polygon_lines``, ...); never written back.
    """

    images: tuple[ImageAnnotation, ...]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.category_ids is not None:
            ids = tuple(int(c) for c in self.category_ids)
            if len(ids) != len(self.class_names):
                raise DatasetError(f"{len(ids)} category ids for {len(self.class_names)} class names")
            if len(set(ids)) != len(ids):
                raise DatasetError("duplicate category ids")
            object.__setattr__(self, "category_ids", ids)
        object.__setattr__(self, "meta", dict(self.meta))
        object.__setattr__(self, "provenance", dict(self.provenance))

    def category_id(self, label: int) -> int:
        """The category id written for ``label``: the source file's, else ``label + 1``."""
        return self.category_ids[label] if self.category_ids is not None else label + 1

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names present, in first-seen order (empty when the layout has none)."""
        return tuple(dict.fromkeys(im.split for im in self.images if im.split is not None))

    def split(self, name: str) -> AnnotationSet:
        """Only the images of split ``name`` (a :class:`DatasetError` lists the splits there are)."""
        if name not in self.splits:
            have = ", ".join(self.splits) or "none (this dataset has no splits)"
            raise DatasetError(f"no split {name!r}; splits: {have}")
        return replace(self, images=tuple(im for im in self.images if im.split == name))

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[ImageAnnotation]:
        return iter(self.images)

    def __getitem__(self, i: int) -> ImageAnnotation:
        return self.images[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_boxes(self) -> int:
        return sum(len(im) for im in self.images)

    def subset(self, indices: Sequence[int]) -> AnnotationSet:
        return replace(self, images=tuple(self.images[i] for i in indices))

    def sorted_by_path(self) -> AnnotationSet:
        return replace(self, images=tuple(sorted(self.images, key=lambda im: str(_resolved(im.path)))))

    def same_as(self, other: AnnotationSet) -> bool:
        """Exact equality, independent of image order."""
        if self.class_names != other.class_names or len(self) != len(other):
            return False
        a, b = self.sorted_by_path(), other.sorted_by_path()
        return all(x.same_as(y) for x, y in zip(a.images, b.images, strict=True))

    def differences(self, other: AnnotationSet, limit: int = 5) -> list[str]:
        """Human-readable list of the first ``limit`` differences (for test messages and `data info`)."""
        out: list[str] = []
        if self.class_names != other.class_names:
            out.append(f"class names {self.class_names} != {other.class_names}")
        mine = {_resolved(im.path): im for im in self.images}
        theirs = {_resolved(im.path): im for im in other.images}
        for p in sorted(set(mine) ^ set(theirs))[:limit]:
            out.append(f"{p}: only in {'first' if p in mine else 'second'}")
        for p in sorted(set(mine) & set(theirs)):
            if len(out) >= limit:
                break
            if not mine[p].same_as(theirs[p]):
                out.append(f"{p}: annotations differ")
        return out

    def validate(self) -> AnnotationSet:
        """Raise :class:`DatasetError` for labels out of range, negative sizes or boxes outside the image."""
        for im in self.images:
            validate_image(im, self.class_names)
        return self


def validate_image(im: ImageAnnotation, class_names: Sequence[str], where: str | None = None) -> None:
    """Check one image's annotations; ``where`` names the file the error should point at.
    Raises :class:`DatasetError` with the first of :func:`image_problems`."""
    found = image_problems(im, class_names, where)
    if found:
        raise DatasetError(str(found[0]))


def image_problems(im: ImageAnnotation, class_names: Sequence[str], where: str | None = None) -> list[Problem]:
    """Every problem of one image's annotations: a non-positive image size, non-finite, zero-size or
    negative boxes, boxes outside the image (beyond :data:`OUTSIDE_TOLERANCE`), labels out of range."""
    where = where or str(im.path)
    if im.width <= 0 or im.height <= 0:
        return [Problem(where, f"image size must be positive, got {im.width}x{im.height}")]
    out: list[Problem] = []
    tol = OUTSIDE_TOLERANCE
    for i, (box, label) in enumerate(zip(im.boxes.tolist(), im.labels.tolist(), strict=True)):
        x1, y1, x2, y2 = box
        if not all(math.isfinite(v) for v in box):
            out.append(Problem(where, f"box {i} {box}: coordinates must be finite numbers"))
        elif x2 <= x1 or y2 <= y1:
            out.append(Problem(where, f"box {i} {box} has zero or negative width/height"))
        elif x1 < -tol or y1 < -tol or x2 > im.width + tol or y2 > im.height + tol:
            out.append(Problem(where, f"box {i} {box} lies outside the {im.width}x{im.height} image"))
        if not 0 <= label < len(class_names):
            out.append(Problem(where, f"box {i}: label {label} (label out of range for {len(class_names)} classes)"))
    return out


def _resolved(p: Path) -> Path:
    return Path(os.path.abspath(p))


def relative_or_absolute(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when it lies below it, else absolute."""
    path, root = _resolved(path), _resolved(root)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
