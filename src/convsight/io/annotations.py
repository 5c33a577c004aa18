"""The one in-memory annotation model that every dataset format reads into and writes from.

An :class:`AnnotationSet` is an ordered list of :class:`ImageAnnotation` plus the class names. Boxes
are ``xyxy`` float32 tensors in absolute pixels, labels are 0-based indices into ``class_names``.
Images with no boxes are ordinary members (``boxes`` of shape ``(0, 4)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from convsight.errors import DatasetError

# Boxes may poke this far (pixels) outside the image before a reader calls the file broken: many
# real annotation tools round outwards by a pixel.
OUTSIDE_TOLERANCE = 1.0


@dataclass(frozen=True, eq=False)
class ImageAnnotation:
    """One image and its boxes.

    path: the image file (absolute or relative to the working directory);
    width, height: image size in pixels; boxes: ``(N, 4)`` float32 xyxy; labels: ``(N,)`` int64.
    """

    path: Path
    width: int
    height: int
    boxes: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        boxes = torch.as_tensor(self.boxes, dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        if boxes.shape[0] != labels.shape[0]:
            raise DatasetError(f"{self.path}: {boxes.shape[0]} boxes but {labels.shape[0]} labels")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def same_as(self, other: ImageAnnotation) -> bool:
        """Exact equality (paths compared after resolving, boxes bit for bit)."""
        return (
            _resolved(self.path) == _resolved(other.path)
            and (self.width, self.height) == (other.width, other.height)
            and torch.equal(self.boxes, other.boxes)
            and torch.equal(self.labels, other.labels)
        )


@dataclass(frozen=True, eq=False)
class AnnotationSet:
    """An ordered collection of annotated images with their class names."""

    images: tuple[ImageAnnotation, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "class_names", tuple(self.class_names))

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
    """Check one image's annotations; ``where`` names the file the error should point at."""
    where = where or str(im.path)
    if im.width <= 0 or im.height <= 0:
        raise DatasetError(f"{where}: image size must be positive, got {im.width}x{im.height}")
    if len(im) == 0:
        return
    b = im.boxes
    if not torch.isfinite(b).all():
        raise DatasetError(f"{where}: box coordinates must be finite numbers")
    bad = ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).nonzero()
    if len(bad):
        i = int(bad[0])
        raise DatasetError(f"{where}: box {i} {b[i].tolist()} has zero or negative width/height")
    tol = OUTSIDE_TOLERANCE
    outside = (
        (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 2] > im.width + tol) | (b[:, 3] > im.height + tol)
    ).nonzero()
    if len(outside):
        i = int(outside[0])
        raise DatasetError(
            f"{where}: box {i} {b[i].tolist()} lies outside the {im.width}x{im.height} image"
        )
    lab = im.labels
    if (lab < 0).any() or (lab >= len(class_names)).any():
        raise DatasetError(f"{where}: label out of range for {len(class_names)} classes")


def _resolved(p: Path) -> Path:
    return Path(os.path.abspath(p))


def relative_or_absolute(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when it lies below it, else absolute."""
    path, root = _resolved(path), _resolved(root)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
