"""Images for style transfer that need no download: photos shipped inside the dependencies and
procedurally generated style patterns (no painting ships anywhere).

Built-in names (accepted by the CLI wherever an image path is, when no such file exists):
``astronaut``, ``chelsea``, ``coffee``, ``rocket``, ``hubble`` (skimage.data), ``china``,
``flower`` (scikit-learn sample images), and the generated patterns ``swirl`` (flowing blue/orange
strokes, a stand-in for a painting) and ``mosaic`` (a stained-glass-like Voronoi pattern).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from convsight.errors import ImageError

_SKIMAGE = {"astronaut": "astronaut", "chelsea": "chelsea", "coffee": "coffee", "rocket": "rocket",
            "hubble": "hubble_deep_field"}
_SKLEARN = {"china": "china.jpg", "flower": "flower.jpg"}
PATTERNS = ("swirl", "mosaic")
BUILTIN_NAMES = (*_SKIMAGE, *_SKLEARN, *PATTERNS)


def swirl(size: int = 512, seed: int = 0) -> np.ndarray:
    """Flowing strokes: a noise flow field traced by short coloured streaks. (size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = np.zeros((size, size))
    for _ in range(4):  # a smooth random flow direction field
        fx, fy, ph = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 2 * math.pi, 2)
        angle += 0.6 * np.sin(2 * math.pi * fx * xx + ph[0]) * np.cos(2 * math.pi * fy * yy + ph[1])
    # stripes across the flow: phase advances perpendicular to the local direction
    u = xx * np.cos(angle * 1.5) + yy * np.sin(angle * 1.5)
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * 7 * u + 2 * angle)
    detail = 0.5 + 0.5 * np.sin(2 * math.pi * 24 * (xx * np.sin(angle) - yy * np.cos(angle)))
    palette = np.array([[18, 32, 90], [40, 70, 160], [240, 240, 235], [245, 170, 40], [200, 90, 20]], float)
    t = np.clip(0.8 * stripes + 0.2 * detail, 0, 1) * (len(palette) - 1)
    lo = np.floor(t).astype(int).clip(0, len(palette) - 2)
    frac = (t - lo)[..., None]
    img = palette[lo] * (1 - frac) + palette[lo + 1] * frac
    return img.clip(0, 255).astype(np.uint8)


def mosaic(size: int = 512, cells: int = 90, seed: int = 0) -> np.ndarray:
    """Voronoi cells in saturated colours with dark leading between them. (size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, size, (cells, 2))
    colours = rng.choice(np.array([[200, 40, 40], [30, 90, 190], [240, 200, 50], [40, 150, 80],
                                   [120, 50, 150], [230, 120, 30]], float), cells)
    yy, xx = np.mgrid[0:size, 0:size]
    d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2  # (size, size, cells)
    two = np.partition(d, 1, axis=-1)[..., :2]
    edge = np.sqrt(two[..., 1]) - np.sqrt(two[..., 0]) < 3.0  # near a border between two cells
    img = colours[d.argmin(-1)] * (0.85 + 0.15 * rng.uniform(size=(size, size, 1)))
    img[edge] = (25, 20, 20)
    return img.clip(0, 255).astype(np.uint8)


def builtin_image(name: str) -> np.ndarray:
    """A built-in image by name -> (H, W, 3) uint8 RGB. Raises ImageError for an unknown name."""
    key = name.strip().lower()
    if key in _SKIMAGE:
        import skimage.data

        img = getattr(skimage.data, _SKIMAGE[key])()
    elif key in _SKLEARN:
        from sklearn.datasets import load_sample_image

        img = load_sample_image(_SKLEARN[key])
    elif key == "swirl":
        img = swirl()
    elif key == "mosaic":
        img = mosaic()
    else:
        raise ImageError(f"{name}: no such image file, and not a built-in image ({', '.join(BUILTIN_NAMES)})")
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def load_style_input(path_or_name: str) -> Tensor:
    """An image file, or a built-in name when no such file exists -> (3, H, W) float in [0, 1]."""
    from pathlib import Path

    from convsight.io.images import load_image_tensor

    if Path(path_or_name).exists() or path_or_name.strip().lower() not in BUILTIN_NAMES:
        return load_image_tensor(path_or_name)
    return torch.from_numpy(builtin_image(path_or_name)).permute(2, 0, 1).float() / 255.0
