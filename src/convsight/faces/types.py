"""Types the face modules share: detections with landmarks, and the embedder contract that both the
pretrained (dlib port) and the trainable embedders implement, so verification, the gallery and the
CLI work with either."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FaceDetections:
    """Faces found in one image.

    boxes (N, 4) xyxy absolute pixels; scores (N,) in [0, 1]; landmarks (N, 5, 2) absolute (x, y) in
    MTCNN's order: left eye, right eye, nose, left mouth corner, right mouth corner (left/right as
    seen in the image).
    """

    boxes: Tensor
    scores: Tensor
    landmarks: Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> "FaceDetections":
        return FaceDetections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 5, 2))


class FaceEmbedder(nn.Module):
    """Maps aligned face chips to L2-normalised embeddings.

    Subclasses set ``embedder_id`` (stable string naming model + weights: the gallery refuses to mix
    embeddings of different ids), ``dim``, ``chip_size`` (S) and ``alignment`` (the name of the template
    in :mod:`convsight.faces.alignment` whose chips the model expects).
    """

    embedder_id: str = "unset"
    dim: int = 0
    chip_size: int = 0
    alignment: str = "unset"

    def forward(self, chips: Tensor) -> Tensor:  # pragma: no cover - abstract
        """chips (B, 3, S, S) float in [0, 1] -> (B, dim) with unit L2 norm."""
        raise NotImplementedError
