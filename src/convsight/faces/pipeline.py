"""Photo -> faces -> aligned chips -> embeddings, in one object.

    pipe = FacePipeline.pretrained()                  # MTCNN + dlib's ResNet (converted once, cached)
    faces = pipe(load_image("group.jpg"))             # every face: boxes, landmarks, chips, embeddings
    e = pipe.embed_single_face("me.jpg")              # (128,), or a one-line error: none / several faces

Chips are warped as uint8 (what dlib's network saw in training) and embedded in batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from convsight.errors import InputFileError
from convsight.faces.alignment import align_faces
from convsight.faces.mtcnn import MTCNN, MTCNNConfig
from convsight.faces.types import FaceDetections, FaceEmbedder


class FaceCountError(InputFileError):
    """An image has no face, or several where exactly one was expected."""


@dataclass(frozen=True)
class Faces:
    """Every face of one image: detections, chips (N, S, S, 3) uint8 and embeddings (N, D) unit norm."""

    detections: FaceDetections
    chips: np.ndarray
    embeddings: Tensor

    def __len__(self) -> int:
        return len(self.detections)


def chips_to_tensor(chips: np.ndarray) -> Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float().div_(255.0)


class FacePipeline:
    """Detector + alignment template + embedder; ``margin`` adds context around each chip."""

    def __init__(self, detector: MTCNN, embedder: FaceEmbedder, margin: float = 0.0, batch_size: int = 64) -> None:
        self.detector, self.embedder = detector.eval(), embedder.eval()
        self.margin, self.batch_size = margin, batch_size

    @classmethod
    def pretrained(
        cls, config: MTCNNConfig | None = None, cache: str | os.PathLike[str] | None = None
    ) -> "FacePipeline":
        """MTCNN's published weights and dlib's ResNet (``cache``: the converted file's path)."""
        from convsight.faces.dlib_port import load_dlib_resnet

        return cls(MTCNN.pretrained(config), load_dlib_resnet(cache))

    def detect(self, image: np.ndarray) -> FaceDetections:
        """image (H, W, 3) uint8 RGB -> faces, highest score first."""
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        det = self.detector([tensor])[0]
        order = det.scores.argsort(descending=True)
        return FaceDetections(det.boxes[order], det.scores[order], det.landmarks[order])

    def align(self, image: np.ndarray, detections: FaceDetections) -> np.ndarray:
        """Chips (N, S, S, 3) uint8 on the embedder's template."""
        e = self.embedder
        return align_faces(image, detections.landmarks.numpy(), e.alignment, e.chip_size, self.margin)

    @torch.inference_mode()
    def embed_chips(self, chips: np.ndarray) -> Tensor:
        """(N, S, S, 3) uint8 -> (N, D) unit-norm embeddings, in batches."""
        if len(chips) == 0:
            return torch.zeros(0, self.embedder.dim)
        parts = [self.embedder(chips_to_tensor(chips[i:i + self.batch_size]))
                 for i in range(0, len(chips), self.batch_size)]
        return torch.cat(parts)

    def __call__(self, image: np.ndarray) -> Faces:
        det = self.detect(image)
        chips = self.align(image, det)
        return Faces(det, chips, self.embed_chips(chips))

    def faces_in(self, path: str | os.PathLike[str]) -> Faces:
        """Every face in the image file at ``path`` (unreadable files raise ImageError)."""
        from convsight.io.images import load_image

        return self(load_image(path))

    def single_face(self, path: str | os.PathLike[str]) -> Faces:
        """The one face in ``path``; :class:`FaceCountError` when there is none or several."""
        faces = self.faces_in(path)
        if len(faces) == 0:
            raise FaceCountError(f"no face found in {Path(path)}")
        if len(faces) > 1:
            raise FaceCountError(f"{len(faces)} faces found in {Path(path)} where one was expected")
        return faces

    def embed_single_face(self, path: str | os.PathLike[str]) -> Tensor:
        """(D,) embedding of the one face in ``path``."""
        return self.single_face(path).embeddings[0]
