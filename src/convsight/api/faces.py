"""Faces from Python: find, embed, verify and recognise on any image input.

    pipe = convsight.FacePipeline.pretrained()     # MTCNN + dlib's ResNet (converted once, cached)
    faces = pipe("group.jpg")                      # FaceResult: boxes, landmarks, embeddings, .plot()
    pipe.verify("me.jpg", "you.jpg").same          # one face each; distance vs the embedder's threshold
    with pipe.gallery(tmp / "g.sqlite") as g:      # a convsight.Gallery for this pipeline's embedder
        pipe.enroll(g, "me", "me.jpg"); pipe.identify(g, "group.jpg")

:class:`FacePipeline` is :class:`convsight.faces.pipeline.FacePipeline` with the API's image inputs
(:mod:`convsight.api.images`) and these conveniences; everything the base class does still works.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from convsight.api.images import ImageInput, save_rgb, source_of, to_array
from convsight.faces.gallery import Gallery
from convsight.faces.pipeline import FaceCountError, Faces
from convsight.faces.pipeline import FacePipeline as _FacePipeline
from convsight.faces.types import FaceDetections


@dataclass(frozen=True, eq=False)
class FaceResult(Faces):
    """Every face of one image, highest detection score first (a :class:`~convsight.faces.pipeline.Faces`).

    detections: boxes ``(N, 4)`` xyxy pixels, scores ``(N,)``, landmarks ``(N, 5, 2)``; chips ``(N, S,
    S, 3)`` uint8 aligned faces; embeddings ``(N, D)`` unit norm; image: the ``(H, W, 3)`` uint8
    picture; source: its path (None in memory).
    """

    image: np.ndarray | None = field(default=None, repr=False)
    source: str | None = None

    @property
    def boxes(self) -> Tensor:
        """``(N, 4)`` float xyxy pixels."""
        return self.detections.boxes

    @property
    def scores(self) -> Tensor:
        """``(N,)`` detection scores in ``[0, 1]``."""
        return self.detections.scores

    @property
    def landmarks(self) -> Tensor:
        """``(N, 5, 2)`` (x, y): eyes, nose, mouth corners (MTCNN's order)."""
        return self.detections.landmarks

    def to_dict(self) -> dict[str, Any]:
        """``{"file", "faces": [{"box_xyxy", "score", "landmarks"}]}`` (embeddings left out: use ``.embeddings``)."""
        return {"file": self.source, "faces": [
            {"box_xyxy": [round(v, 2) for v in b], "score": round(s, 4), "landmarks": [[round(v, 2) for v in p] for p in lm]}
            for b, s, lm in zip(self.boxes.tolist(), self.scores.tolist(), self.landmarks.tolist(), strict=True)]}

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def plot(self) -> np.ndarray:
        """A copy of the image with each face box and its five landmarks drawn: ``(H, W, 3)`` uint8."""
        from convsight.viz import draw_faces

        if self.image is None:
            raise ValueError("this result holds no image to draw on")
        return draw_faces(self.image, self.boxes, self.landmarks)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`plot` (or, for ``.json``, :meth:`to_json`) to ``path`` atomically."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            from convsight.io.atomic import write_json

            write_json(path, self.to_dict())
            return path
        return save_rgb(self.plot(), path)


@dataclass(frozen=True)
class Verification:
    """The answer of :meth:`FacePipeline.verify`: ``same`` when ``distance <= threshold``.

    distance: Euclidean distance of the two unit-norm embeddings; threshold_source: where the
    threshold comes from, in words. ``bool(v)`` is ``v.same``.
    """

    distance: float
    threshold: float
    same: bool
    threshold_source: str = ""

    def __bool__(self) -> bool:
        return self.same

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {"distance": self.distance, "threshold": self.threshold, "same": self.same,
                "threshold_source": self.threshold_source}


class FacePipeline(_FacePipeline):
    """Detector + alignment + embedder (:meth:`pretrained` for the shipped ones) on any image input."""

    def detect(self, image: ImageInput) -> FaceDetections:  # type: ignore[override]
        """Faces in ``image`` (any image input), highest score first: boxes, scores, landmarks."""
        return super().detect(to_array(image))

    def __call__(self, image: ImageInput) -> FaceResult:  # type: ignore[override]
        """Every face of ``image``: a :class:`FaceResult` (detections, chips, embeddings, ``.plot()``)."""
        picture = to_array(image)
        faces = super().__call__(picture)
        return FaceResult(faces.detections, faces.chips, faces.embeddings, picture, source_of(image))

    def embed(self, image: ImageInput) -> Tensor:
        """``(N, D)`` unit-norm embeddings of every face in ``image``, highest detection score
        first (``(0, D)`` when there is none), like face_recognition's ``face_encodings``."""
        return self(image).embeddings

    def embed_one(self, image: ImageInput) -> Tensor:
        """``(D,)`` embedding of the one face in ``image``; :class:`FaceCountError` for none or several."""
        faces = self(image)
        where = faces.source or "the image"
        if len(faces) != 1:
            raise FaceCountError(f"no face found in {where}" if len(faces) == 0
                                 else f"{len(faces)} faces found in {where} where one was expected")
        return faces.embeddings[0]

    def verify(self, a: ImageInput, b: ImageInput, threshold: float | None = None) -> Verification:
        """Are the one face in ``a`` and the one face in ``b`` the same person?

        threshold: accept at or below this distance (default: the embedder's own, for the
        pretrained pipeline dlib's 0.6 carried over to unit-norm embeddings), as ``convsight faces
        verify`` decides.
        """
        from convsight.faces.verification import default_threshold

        distance = float((self.embed_one(a) - self.embed_one(b)).norm())
        if threshold is None:
            known = default_threshold(self.embedder)
            limit, source = known.value, known.source
        else:
            limit, source = float(threshold), "given"
        return Verification(distance, limit, distance <= limit, source)

    def gallery(self, path: str | os.PathLike[str] | None = None) -> Gallery:
        """Open (or create) the gallery file for this pipeline's embedder; use it in a ``with``.

        path: default ``convsight.faces.paths.default_gallery_path()``, the one the CLI uses.
        """
        from convsight.faces.paths import default_gallery_path

        return Gallery(path if path is not None else default_gallery_path(), self.embedder.embedder_id,
                       self.embedder.dim)

    def enroll(self, gallery: Gallery | str | os.PathLike[str] | None, name: str, *images: ImageInput) -> int:
        """Add ``name``'s face from each image (exactly one face each, all checked before writing);
        returns how many embeddings were added.

        gallery: an open :class:`Gallery`, or a gallery file (None: the default one), which is then
        opened (created) only once every image has passed, so a refused photo leaves no file behind.
        """
        from convsight.extras import require

        require("faces", "the face gallery")  # FAISS: say so before embedding every photo
        embeddings = torch.stack([self.embed_one(im) for im in images]).numpy()
        sources = [source_of(im) or "<memory>" for im in images]
        if isinstance(gallery, Gallery):
            return gallery.enroll(name, embeddings, sources)
        with self.gallery(gallery) as g:
            return g.enroll(name, embeddings, sources)

    def identify(self, gallery: Gallery, image: ImageInput, k: int = 1,
                 threshold: float | None = None) -> list[tuple[str, float]]:
        """For each face of ``image`` (highest score first): ``(name, distance)`` of the closest
        enrolled person, ``("unknown", distance)`` past the threshold (default: the embedder's),
        ``("unknown", inf)`` for an empty gallery. k: neighbours searched per face."""
        from convsight.faces.verification import UNKNOWN, closest_identity, default_threshold

        limit = threshold if threshold is not None else default_threshold(self.embedder).value
        embeddings = self.embed(image)
        if len(embeddings) == 0:
            return []
        out = []
        for found in gallery.identify(embeddings.numpy(), k=k):
            name = closest_identity(found, limit) if found else UNKNOWN
            out.append((name, float(found[0][1]) if found else float("inf")))
        return out


__all__ = ["FaceCountError", "FacePipeline", "FaceResult", "Gallery", "Verification"]
