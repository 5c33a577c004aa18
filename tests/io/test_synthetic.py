from __future__ import annotations

import numpy as np
import pytest

from convsight.errors import ConfigError
from convsight.io.synthetic import SHAPES, SynthConfig, background_windows, render_scene


def test_deterministic_by_seed_and_index():
    cfg = SynthConfig(image_size=(96, 128))
    a, b = render_scene(cfg, 3, 5), render_scene(cfg, 3, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    c = render_scene(cfg, 4, 5)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (96, 128, 3) and a.image.dtype == np.uint8


def test_boxes_are_tight_integer_extents_of_visible_shapes():
    cfg = SynthConfig(image_size=(160, 160), background="plain", min_objects=1, max_objects=1)
    for i in range(10):
        s = render_scene(cfg, 0, i)
        assert len(s.boxes) == 1
        x1, y1, x2, y2 = s.boxes[0].astype(int)
        assert np.array_equal(s.boxes[0], s.boxes[0].round())
        # The object differs from the (plain) background inside its box, and the border rows/cols
        # just outside the box look like background.
        inside = s.image[y1:y2, x1:x2].astype(float)
        corner = s.image[:4, :4].reshape(-1, 3).astype(float).mean(0)
        assert np.abs(inside - corner).sum(-1).max() > 60


def test_set_statistics_cover_what_detectors_need():
    cfg = SynthConfig(image_size=(128, 128))
    scenes = [render_scene(cfg, 0, i) for i in range(60)]
    counts = [len(s.boxes) for s in scenes]
    assert min(counts) == 0 and max(counts) >= 4  # empty images and crowded ones
    labels = np.concatenate([s.labels for s in scenes])
    assert set(labels.tolist()) == set(range(len(SHAPES)))
    boxes = np.concatenate([s.boxes for s in scenes])
    side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    assert side.min() < 20 and side.max() > 50  # small and large objects
    ratio = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
    assert ratio.min() < 0.75 and ratio.max() > 1.33  # varied aspect ratios
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 128).all()
    for s in scenes:  # bounded overlap
        for i in range(len(s.boxes)):
            for j in range(i):
                a, b = s.boxes[i], s.boxes[j]
                iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
                ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
                union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - iw * ih
                assert iw * ih / union <= cfg.max_overlap + 1e-6


def test_single_object_mode():
    cfg = SynthConfig(image_size=(96, 96), single_object=True)
    for i in range(8):
        s = render_scene(cfg, 1, i)
        assert len(s.boxes) == 1
        assert (s.boxes[0, 2] - s.boxes[0, 0]) * (s.boxes[0, 3] - s.boxes[0, 1]) > 0.03 * 96 * 96


def test_background_windows_avoid_objects():
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 10, 60, 60]], np.float32)
    wins = background_windows(rng, boxes, 128, 128, count=5, min_side=12)
    assert len(wins) == 5
    for w in wins:
        iw = max(0, min(w[2], 60) - max(w[0], 10))
        ih = max(0, min(w[3], 60) - max(w[1], 10))
        assert iw * ih / ((w[2] - w[0]) * (w[3] - w[1]) + 2500 - iw * ih) <= 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [({"image_size": (16, 16)}, "at least 32"), ({"classes": ("blob",)}, "unknown shape"),
     ({"min_objects": 3, "max_objects": 1}, "min_objects"), ({"background": "sky"}, "unknown background"),
     ({"max_overlap": 1.0}, "max_overlap")],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)
