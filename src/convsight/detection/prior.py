"""The trivial baseline of the lineage table: a box per class, from the training set's statistics.

Every image gets the same ``C`` detections, one per class: that class's mean box (its training
boxes averaged in fractions of the image side, so it is an answer for any image size), scored by
the class's share of the training boxes. It never looks at the pixels, so whatever a detector
scores above it, it learnt from the image. A method that cannot beat it has learnt nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet
from convsight.structures import Detections


@dataclass(frozen=True)
class ClassPrior:
    """boxes: ``(C, 4)`` mean xyxy per class as fractions of the image's width / height; frequency:
    ``(C,)`` each class's share of the training boxes (a class never seen: 0, and no detection)."""

    boxes: Tensor
    frequency: Tensor

    @classmethod
    def fit(cls, annotations: AnnotationSet) -> ClassPrior:
        """Mean box and share of each class over every non-ignored box of ``annotations``."""
        num_classes = len(annotations.class_names)
        sums, counts = torch.zeros(num_classes, 4, dtype=torch.float64), torch.zeros(num_classes, dtype=torch.float64)
        for im in annotations.images:
            kept = im.select(~im.ignored)
            scale = torch.tensor([im.width, im.height, im.width, im.height], dtype=torch.float64)
            sums.index_add_(0, kept.labels, kept.boxes.double() / scale)  # (N, 4) fractions
            counts.index_add_(0, kept.labels, torch.ones(len(kept.labels), dtype=torch.float64))
        if counts.sum() == 0:
            raise DatasetError("the class prior needs at least one box in its training set")
        boxes = sums / counts.clamp(min=1)[:, None]
        return cls(boxes.float(), (counts / counts.sum()).float())

    def detect(self, height: int, width: int) -> Detections:
        """One image of ``height x width`` pixels -> one detection per class seen in training."""
        seen = self.frequency > 0
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        labels = torch.arange(len(self.frequency))[seen]
        return Detections(self.boxes[seen] * scale, self.frequency[seen], labels)

    def predict(self, annotations: AnnotationSet) -> list[Detections]:
        """The same answer for every image of ``annotations``, in each image's own pixels."""
        return [self.detect(im.height, im.width) for im in annotations.images]
