"""Sliding windows over an image, for classifier-as-detector pipelines (OverFeat-style, R-CNN baselines).

Every window lies fully inside the image, in whole pixels. Along each axis windows start at ``0, s,
2s, ...`` while they fit; if the last one stops short of the border, one more window is placed flush
with the right (bottom) edge, so the whole image is covered. A window larger than the image along an
axis does not fit and yields nothing.

**Order**: window size by window size (in the order given), then row-major position (top row first,
left to right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor

from convsight.errors import ConfigError


def window_starts(length: int, window: int, step: int) -> list[int]:
    """Start offsets along one axis of ``length`` pixels for windows of ``window`` pixels."""
    if window > length:
        return []
    starts = list(range(0, length - window + 1, step))
    if starts[-1] + window < length:  # align one last window to the border so the edge is covered
        starts.append(length - window)
    return starts


def _step(stride: int | float, window: int) -> int:
    if isinstance(stride, bool):
        raise ConfigError(f"window stride must be an int (pixels) or a float fraction, got {stride!r}")
    if isinstance(stride, Integral):
        if stride <= 0:
            raise ConfigError(f"window stride must be a positive number of pixels, got {stride}")
        return int(stride)
    if not 0.0 < stride <= 1.0:
        raise ConfigError(
            f"a float window stride is a fraction of the window in (0, 1], got {stride}; pass an int for pixels"
        )
    return max(1, round(stride * window))


def sliding_windows(
    image_size: Sequence[int],
    window_sizes: Sequence[tuple[int, int]],
    stride: int | float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Windows ``(N, 4)`` xyxy in pixels covering an image of ``image_size = (H, W)``.

    window_sizes: ``(h, w)`` per window shape, in pixels. stride: an ``int`` is a step in pixels; a
    ``float`` in ``(0, 1]`` is a fraction of the window's side (rounded to whole pixels, per axis).
    Order: see the module doc.
    """
    if len(image_size) != 2 or not all(int(s) > 0 for s in image_size):
        raise ConfigError(f"image size must be (H, W) with positive sides, got {tuple(image_size)}")
    img_h, img_w = int(image_size[0]), int(image_size[1])
    out = []
    for size in window_sizes:
        if len(size) != 2 or not all(s > 0 for s in size):
            raise ConfigError(f"window size must be (h, w) with positive sides, got {tuple(size)}")
        h, w = round(size[0]), round(size[1])
        ys = torch.tensor(window_starts(img_h, h, _step(stride, h)), dtype=torch.float64)
        xs = torch.tensor(window_starts(img_w, w, _step(stride, w)), dtype=torch.float64)
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (ny, nx), row-major
        out.append(torch.stack((xx, yy, xx + w, yy + h), dim=-1).reshape(-1, 4))
    if not out:
        return torch.zeros((0, 4), dtype=dtype, device=device)
    return torch.cat(out).to(dtype=dtype, device=device)


def window_sizes_from_scales(
    base_size: float, scales: Sequence[float], aspect_ratios: Sequence[float]
) -> list[tuple[int, int]]:
    """``(h, w)`` window sizes for each scale (outer) and aspect ratio ``w / h`` (inner).

    A window of scale ``s`` and ratio ``r`` has ``sqrt(w * h) = base_size * s`` and ``w / h = r``,
    both up to rounding to whole pixels.
    """
    if base_size <= 0 or not all(s > 0 for s in scales) or not all(r > 0 for r in aspect_ratios):
        raise ConfigError(
            f"base_size, scales and aspect ratios must be positive, got {base_size}, {tuple(scales)}, "
            f"{tuple(aspect_ratios)}"
        )
    sizes = []
    for s in scales:
        for r in aspect_ratios:
            side = base_size * s
            sizes.append((max(1, round(side / math.sqrt(r))), max(1, round(side * math.sqrt(r)))))
    return sizes


def sliding_windows_by_scale(
    image_size: Sequence[int],
    base_size: float,
    scales: Sequence[float],
    aspect_ratios: Sequence[float] = (1.0,),
    stride: int | float = 0.5,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """:func:`sliding_windows` over the shapes of :func:`window_sizes_from_scales` (scale outer, ratio
    inner, then row-major position). Returns ``(N, 4)`` xyxy."""
    sizes = window_sizes_from_scales(base_size, scales, aspect_ratios)
    return sliding_windows(image_size, sizes, stride, dtype=dtype, device=device)
