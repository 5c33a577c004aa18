"""Alignment: Umeyama recovers similarities; chips put the landmarks on the template."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from convsight.errors import ConfigError
from convsight.faces.alignment import TEMPLATES, align_face, alignment_matrix, get_template, transform_points, umeyama


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_umeyama_recovers_a_similarity() -> None:
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    m = similarity(33, 1.7, 12.0, -4.0)
    assert np.allclose(umeyama(src, transform_points(m, src)), m, atol=1e-9)


def test_umeyama_refuses_reflections_and_degenerate_points() -> None:
    src = np.array([[0.0, 0], [4, 0], [0, 1], [1, 3], [2, 2.5]])
    mirrored = src * [-1, 1]
    m = umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ConfigError, match="coincide"):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))


def dotted_image(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Black image with a small white disc at each point (sub-pixel centres)."""
    img = np.zeros((*shape, 3), np.uint8)
    for x, y in points:
        cv2.circle(img, (round(x * 16), round(y * 16)), 5 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    return img


def centroids(chip: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Intensity centroid of the chip within 6 px of each expected point."""
    g = chip[..., 0].astype(np.float64)
    ys, xs = np.mgrid[: g.shape[0], : g.shape[1]]
    out = []
    for x, y in near:
        w = g * ((xs - x) ** 2 + (ys - y) ** 2 < 36)
        out.append([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    return np.array(out)


@pytest.mark.parametrize("template", ["dlib150", "arcface112"])
@pytest.mark.parametrize("angle, scale", [(17.0, 1.3), (-25.0, 0.8), (8.0, 3.1)])  # 3.1: through the pyramid
def test_landmarks_land_on_the_template(template: str, angle: float, scale: float) -> None:
    tpl = get_template(template)
    target = np.asarray(tpl.points)
    to_image = similarity(angle, scale, 200.0, 150.0)
    landmarks = transform_points(to_image, target - tpl.size / 2)  # a rotated, scaled "face"
    image = dotted_image(landmarks, (800, 800))
    chip = align_face(image, landmarks, template)
    assert chip.shape == (tpl.size, tpl.size, 3) and chip.dtype == np.uint8
    assert np.abs(centroids(chip, target) - target).max() < 1.0


def test_size_and_margin_rescale_the_template() -> None:
    landmarks = np.asarray(TEMPLATES["arcface112"].points) * 2 + 50
    m = alignment_matrix(landmarks, "arcface112", size=224)
    assert np.allclose(transform_points(m, landmarks), np.asarray(TEMPLATES["arcface112"].points) * 2, atol=1e-6)
    with_margin = transform_points(alignment_matrix(landmarks, "arcface112", size=224, margin=0.25), landmarks)
    centre = np.array([112.0, 112.0])
    assert np.linalg.norm(with_margin - centre, axis=1).max() < np.linalg.norm(
        np.asarray(TEMPLATES["arcface112"].points) * 2 - centre, axis=1).max()


def test_unknown_template() -> None:
    with pytest.raises(ConfigError, match="arcface112"):
        align_face(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2)), "nope")
