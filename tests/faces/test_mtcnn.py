"""MTCNN: one face with its landmarks on the two portrait photos, none on face-free photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsight.errors import ConfigError
from convsight.faces.mtcnn import MTCNN, MTCNNConfig, crops, nms_min, pyramid_scales
from convsight.io.images import load_image, to_tensor


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN.pretrained()


def astronaut() -> torch.Tensor:
    import skimage.data

    return to_tensor(skimage.data.astronaut().copy())


def grace_hopper() -> torch.Tensor:
    from matplotlib import cbook

    return to_tensor(load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


@pytest.mark.parametrize("photo", [astronaut, grace_hopper])
def test_one_face_with_landmarks_inside_its_box(detector: MTCNN, photo) -> None:  # type: ignore[no-untyped-def]
    det = detector([photo()])[0]
    assert len(det) == 1
    assert det.scores[0] > 0.95
    (x0, y0, x1, y1), marks = det.boxes[0].tolist(), det.landmarks[0]
    assert 60 < x1 - x0 < 250 and 60 < y1 - y0 < 300
    assert ((marks[:, 0] > x0) & (marks[:, 0] < x1) & (marks[:, 1] > y0) & (marks[:, 1] < y1)).all()
    left_eye, right_eye, nose, mouth_l, mouth_r = marks.tolist()
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]  # left/right as seen in the image
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_face_free_photos(detector: MTCNN) -> None:
    import skimage.data

    coffee, cat = skimage.data.coffee(), skimage.data.chelsea()
    assert [len(d) for d in detector([to_tensor(coffee.copy()), to_tensor(cat.copy())])] == [0, 0]


def test_min_face_size_is_honoured(detector: MTCNN) -> None:
    big_only = MTCNN(MTCNNConfig(min_face_size=200))
    big_only.load_state_dict(detector.state_dict())
    assert len(big_only.eval()([astronaut()])[0]) == 0  # the astronaut's face is ~90 px


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="min_face_size"):
        MTCNNConfig(min_face_size=5)
    with pytest.raises(ConfigError, match="thresholds"):
        MTCNNConfig(thresholds=(0.6, 0.7, 1.5))


def test_pyramid_covers_min_face_to_image() -> None:
    scales = pyramid_scales(100, 200, MTCNNConfig(min_face_size=20))
    assert scales[0] == pytest.approx(0.6)
    assert all(b / a == pytest.approx(0.709) for a, b in zip(scales, scales[1:]))
    assert 100 * scales[-1] >= 12 > 100 * scales[-1] * 0.709


def test_nms_min_drops_nested_boxes() -> None:
    boxes = torch.tensor([[0.0, 0, 100, 100], [10, 10, 40, 40], [200, 200, 260, 260]])
    keep = nms_min(boxes, torch.tensor([0.9, 0.95, 0.5]), 0.7)
    assert sorted(keep.tolist()) == [1, 2]  # the best box wins; the big one contains it


def test_crops_resample_boxes() -> None:
    image = torch.zeros(3, 64, 64)
    image[:, :32] = 1.0  # top half white
    out = crops(image, torch.tensor([[0.0, 0, 64, 64], [0, 0, 32, 32], [-32, 0, 32, 64]]), 24)
    assert out.shape == (3, 3, 24, 24)
    assert out[0, :, :10].min() > 0.99 and out[0, :, 14:].max() < 0.01
    assert np.allclose(out[1, :, :23].numpy(), 1.0, atol=1e-5)  # bilinear: the last row touches y = 32
    assert out[2, :, :, :10].abs().max() < 0.01  # outside the image reads as zero
