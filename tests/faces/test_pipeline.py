"""Photo -> detections -> chips -> embeddings, and the one-face helpers' errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from convsight.errors import ImageError
from convsight.faces.pipeline import FaceCountError, FacePipeline
from convsight.io.images import save_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    return FacePipeline.pretrained(cache=tmp_path_factory.mktemp("cache") / "dlib.safetensors")


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def augmented(image: np.ndarray) -> np.ndarray:
    """Small rotation about the face, brighter, and a jittered crop."""
    rot = cv2.getRotationMatrix2D((222.0, 115.0), 7.0, 1.0)
    out = cv2.warpAffine(image, rot, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out.astype(np.float32) * 1.15 + 6, 0, 255).astype(np.uint8)
    return out[13:470, 21:490].copy()


def test_every_face_is_chipped_and_embedded(pipe: FacePipeline) -> None:
    faces = pipe(astronaut())
    assert len(faces) == 1
    assert faces.chips.shape == (1, 150, 150, 3) and faces.chips.dtype == np.uint8
    assert faces.embeddings.shape == (1, 128)
    assert torch.allclose(faces.embeddings.norm(dim=1), torch.ones(1), atol=1e-5)


def test_same_person_close_other_person_far(pipe: FacePipeline, tmp_path: Path) -> None:
    from matplotlib import cbook

    from convsight.faces.verification import default_threshold

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    save_image(astronaut(), a)
    save_image(augmented(astronaut()), b)
    hopper = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    ea, eb, eh = (pipe.embed_single_face(p) for p in (a, b, hopper))
    limit = default_threshold(pipe.embedder).value
    assert (ea - eb).norm() < limit / 2
    assert (ea - eh).norm() > limit


def test_no_face(pipe: FacePipeline, tmp_path: Path) -> None:
    import skimage.data

    path = save_image(skimage.data.coffee(), tmp_path / "coffee.png")
    with pytest.raises(FaceCountError, match=r"^no face found in .*coffee.png$"):
        pipe.embed_single_face(path)


def test_several_faces(pipe: FacePipeline, tmp_path: Path) -> None:
    face = astronaut()[30:230, 120:330]
    path = save_image(np.concatenate([face, face[:, ::-1]], axis=1), tmp_path / "two.png")
    assert len(pipe.faces_in(path)) == 2
    with pytest.raises(FaceCountError, match="2 faces found in .*two.png where one was expected"):
        pipe.embed_single_face(path)


def test_unreadable_image(pipe: FacePipeline, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError):
        pipe.embed_single_face(bad)


def test_detections_sorted_by_score(pipe: FacePipeline) -> None:
    face = astronaut()[30:230, 120:330]
    dark = (face[:, ::-1] * 0.5).astype(np.uint8)
    det = pipe.detect(np.concatenate([dark, face], axis=1))
    assert len(det) == 2 and det.scores[0] >= det.scores[1]
