"""PyTorch datasets over the annotation model: detection scenes and classification crops.

Images come out as ``(3, H, W) float32`` in ``[0, 1]``; detection targets as
:class:`~convsight.structures.Target` with boxes scaled to the returned image size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet
from convsight.io.class_names import read_class_names
from convsight.io.images import IMAGE_EXTENSIONS, load_image_tensor, resize_image
from convsight.structures import Target


class DetectionDataset(Dataset[tuple[Tensor, Target]]):
    """Scenes for detectors: ``(image (3, h, w), Target)`` with boxes rescaled to ``size``; crowd and
    ``ignore``-marked regions are left out of the targets.

    size: ``(h, w)`` every image is resized to (aspect not kept: detectors here take a fixed input),
    or None to keep each image's own size. hflip: probability of a horizontal flip (training only),
    drawn from a generator seeded by ``(seed, index, epoch)`` so runs repeat exactly.
    """

    def __init__(self, annotations: AnnotationSet, size: tuple[int, int] | None = None, hflip: float = 0.0, seed: int = 0) -> None:
        self.annotations = annotations
        self.size = size
        self.hflip = hflip
        self.seed = seed
        self.epoch = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.annotations.class_names

    def __len__(self) -> int:
        return len(self.annotations)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        ann = self.annotations[index]
        image = load_image_tensor(ann.path)
        h0, w0 = image.shape[-2:]
        if (w0, h0) != (ann.width, ann.height):
            raise DatasetError(f"{ann.path}: image is {w0}x{h0} but the annotations say {ann.width}x{ann.height}")
        # Crowd / ignore regions are not objects: no training target (torchvision's COCO reference and
        # Detectron drop iscrowd=1 annotations the same way). Evaluation keeps them as ignore regions.
        ann = ann.select(~ann.ignored)
        boxes = ann.boxes.clone()
        if self.size is not None:
            image = resize_image(image, self.size)
            sy, sx = self.size[0] / h0, self.size[1] / w0
            boxes *= torch.tensor([sx, sy, sx, sy])
        if self.hflip > 0:
            g = torch.Generator().manual_seed(hash((self.seed, index, self.epoch)) & 0x7FFFFFFF)
            if torch.rand((), generator=g) < self.hflip:
                w = image.shape[-1]
                image = image.flip(-1)
                boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
        return image, Target(boxes=boxes, labels=ann.labels.clone(), image_id=index)


def collate_detection(batch: Sequence[tuple[Tensor, Target]]) -> tuple[Tensor, list[Target]]:
    """Stack same-sized images into ``(B, 3, H, W)``; targets stay a list (their lengths differ)."""
    images, targets = zip(*batch, strict=True)
    if len({tuple(im.shape) for im in images}) != 1:
        raise DatasetError("images in a batch differ in size: give the dataset a fixed `size`")
    return torch.stack(images), list(targets)


class CropsDataset(Dataset[tuple[Tensor, int]]):
    """Class-folder patches (``ROOT/<class>/*.png``) as ``(image (3, s, s), label)``.

    Class order comes from ``ROOT/classes.txt`` when present (so ``background`` keeps its index), else
    the sorted folder names.
    """

    def __init__(self, root: str | os.PathLike[str], size: int = 64, classes: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: crops folder not found")
        names = tuple(classes) if classes is not None else read_class_names(self.root)
        if names is None:
            names = tuple(sorted(p.name for p in self.root.iterdir() if p.is_dir()))
        self.class_names: tuple[str, ...] = names
        self.size = size
        self.samples: list[tuple[Path, int]] = []
        for k, name in enumerate(names):
            folder = self.root / name
            if folder.is_dir():
                self.samples += [(p, k) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not self.samples:
            raise DatasetError(f"{self.root}: no image crops found in class folders")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        return resize_image(load_image_tensor(path), (self.size, self.size)), label
