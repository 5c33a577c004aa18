"""Helpers to build annotation sets backed by real (tiny) image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convsight.io.annotations import AnnotationSet, ImageAnnotation


def make_set(root: Path, rng: np.random.Generator, n_images: int = 6, classes=("a", "b", "c"),
             quantum: float | None = None) -> AnnotationSet:
    """Random boxes on real PNG files under ``root/images`` (some images without boxes)."""
    images = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        w, h = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        path = root / "images" / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        k = 0 if i % 3 == 0 else int(rng.integers(1, 6))
        xy1 = rng.uniform(0, [w - 2, h - 2], size=(k, 2))
        xy2 = xy1 + rng.uniform(0.5, 1.0, size=(k, 2)) * ([w, h] - xy1)
        boxes = np.concatenate([xy1, xy2], 1)
        if quantum:
            boxes = np.round(boxes / quantum) * quantum
        images.append(ImageAnnotation(path, w, h, torch.tensor(boxes, dtype=torch.float32),
                                      torch.tensor(rng.integers(0, len(classes), k))))
    return AnnotationSet(tuple(images), tuple(classes))


@pytest.fixture
def random_set(tmp_path: Path) -> AnnotationSet:
    return make_set(tmp_path, np.random.default_rng(1))
