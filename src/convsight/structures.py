"""Typed boxes shared by every layer: detector outputs, training targets, what readers and the evaluator
exchange. A ground-floor module (imports nothing of convsight), so ``io/``, ``ops/`` and ``export/`` can
use it as well as the detectors.

Boxes follow the one house convention: ``xyxy`` float tensors of shape ``(N, 4)`` in absolute pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


def _check_boxes(boxes: Tensor, n: int | None, what: str) -> None:
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{what}.boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if n is not None and boxes.shape[0] != n:
        raise ValueError(f"{what}: {boxes.shape[0]} boxes but {n} labels/scores")


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections in one image.

    boxes: ``(N, 4)`` float xyxy absolute pixels; scores: ``(N,)`` float; labels: ``(N,)`` int64
    class indices (0-based, into the dataset's ``class_names``).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        _check_boxes(self.boxes, self.labels.shape[0], "Detections")
        if self.scores.shape != self.labels.shape:
            raise ValueError("Detections: scores and labels must have the same shape (N,)")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty(device: torch.device | str = "cpu") -> Detections:
        return Detections(
            boxes=torch.zeros((0, 4), device=device),
            scores=torch.zeros((0,), device=device),
            labels=torch.zeros((0,), dtype=torch.int64, device=device),
        )

    def to(self, device: torch.device | str) -> Detections:
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device))

    def __getitem__(self, index: Tensor | slice) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.labels[index])


@dataclass(frozen=True, eq=False)
class DetectorOutput:
    """What every detector's ``forward`` returns, in train and in eval mode.

    detections: one :class:`Detections` per image (empty list when postprocessing was skipped);
    losses: named loss terms (empty when no targets were given); ``loss`` is their sum.
    """

    detections: list[Detections] = field(default_factory=list)
    losses: dict[str, Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> Tensor:
        if not self.losses:
            raise ValueError("no targets were given, so there is no loss")
        return torch.stack([v for v in self.losses.values()]).sum()


@dataclass(frozen=True, eq=False)
class Target:
    """Ground truth for one image as the detectors consume it.

    boxes: ``(G, 4)`` float xyxy absolute pixels (in the coordinates of the tensor fed to the model);
    labels: ``(G,)`` int64 class indices; image_id: position in the data set (for evaluation).
    """

    boxes: Tensor
    labels: Tensor
    image_id: int = -1

    def __post_init__(self) -> None:
        _check_boxes(self.boxes, self.labels.shape[0], "Target")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])
