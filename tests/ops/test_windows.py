"""Sliding windows: hand-worked layouts, counts, coverage of the whole image, order, and errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convsight.errors import ConfigError
from convsight.ops.windows import sliding_windows, sliding_windows_by_scale, window_sizes_from_scales


def _count_1d(length: int, window: int, step: int) -> int:
    """Windows along one axis: the regular ones, plus one flush with the border if they stop short."""
    if window > length:
        return 0
    return (length - window) // step + 1 + (1 if (length - window) % step else 0)


def test_layout_by_hand() -> None:
    # H = 10, W = 13, window h = 4, w = 5, stride 3: y starts 0, 3, 6 (6 + 4 = 10 reaches the bottom);
    # x starts 0, 3, 6 and then 8 (6 + 5 = 11 < 13, so one more flush with the right edge).
    w = sliding_windows((10, 13), [(4, 5)], 3)
    assert w.shape == (12, 4)
    assert w[:4].tolist() == [[0, 0, 5, 4], [3, 0, 8, 4], [6, 0, 11, 4], [8, 0, 13, 4]]
    assert w[-1].tolist() == [8, 6, 13, 10]


def test_fractional_stride_and_size_order() -> None:
    w = sliding_windows((8, 8), [(8, 8), (4, 4)], 0.5)
    # The 8x8 window fits once; 4x4 windows with step 2 start at 0, 2, 4 on each axis (9 windows).
    assert w.shape == (1 + 9, 4)
    assert w[0].tolist() == [0, 0, 8, 8]
    assert w[1:4].tolist() == [[0, 0, 4, 4], [2, 0, 6, 4], [4, 0, 8, 4]]


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    sizes=st.lists(st.tuples(st.integers(1, 45), st.integers(1, 45)), min_size=1, max_size=3),
    stride=st.integers(1, 12) | st.floats(0.05, 1.0),
)
def test_properties(h: int, w: int, sizes: list[tuple[int, int]], stride: int | float) -> None:
    wins = sliding_windows((h, w), sizes, stride)
    counts = []
    for wh, ww in sizes:
        sy = stride if isinstance(stride, int) else max(1, round(stride * wh))
        sx = stride if isinstance(stride, int) else max(1, round(stride * ww))
        counts.append(_count_1d(h, wh, sy) * _count_1d(w, ww, sx))
    assert wins.shape == (sum(counts), 4)
    # Inside the image, with the requested sizes.
    assert bool((wins[:, :2] >= 0).all() and (wins[:, 2] <= w).all() and (wins[:, 3] <= h).all())
    for (wh, ww), chunk in zip(sizes, wins.split(counts)):
        sy = stride if isinstance(stride, int) else max(1, round(stride * wh))
        sx = stride if isinstance(stride, int) else max(1, round(stride * ww))
        if len(chunk) == 0:
            assert wh > h or ww > w
            continue
        assert bool((chunk[:, 2] - chunk[:, 0] == ww).all() and (chunk[:, 3] - chunk[:, 1] == wh).all())
        # Row-major: sorted by (y, x) and no duplicates.
        keys = (chunk[:, 1] * 1000 + chunk[:, 0]).tolist()
        assert keys == sorted(set(keys))
        covered = torch.zeros(h, w, dtype=torch.bool)
        for x1, y1, x2, y2 in chunk.int().tolist():
            covered[y1:y2, x1:x2] = True
        # The four corner pixels are always covered; every pixel is when windows overlap or touch.
        assert bool(covered[0, 0] and covered[0, -1] and covered[-1, 0] and covered[-1, -1])
        if sy <= wh and sx <= ww:
            assert bool(covered.all())


def test_too_large_windows_and_dtype() -> None:
    assert sliding_windows((10, 10), [(11, 4)], 2).shape == (0, 4)
    out = sliding_windows((10, 10), [(11, 4), (10, 10)], 2, dtype=torch.float64)
    assert out.tolist() == [[0, 0, 10, 10]] and out.dtype == torch.float64


@pytest.mark.parametrize("stride", [0, -2, 0.0, 1.5, True])
def test_bad_stride(stride: int | float) -> None:
    with pytest.raises(ConfigError, match="stride"):
        sliding_windows((10, 10), [(4, 4)], stride)


def test_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="image size"):
        sliding_windows((0, 10), [(4, 4)], 2)
    with pytest.raises(ConfigError, match="window size"):
        sliding_windows((10, 10), [(0, 4)], 2)


def test_scales_and_ratios() -> None:
    sizes = window_sizes_from_scales(32, [1.0, 2.0], [1.0, 2.0])
    # (h, w): 32 / sqrt 2 = 22.6 -> 23, 32 * sqrt 2 = 45.3 -> 45; 64 / sqrt 2 = 45.3 -> 45, 90.5 -> 91.
    assert sizes == [(32, 32), (23, 45), (64, 64), (45, 91)]
    for (h, w), (s, r) in zip(sizes, [(1, 1), (1, 2), (2, 1), (2, 2)]):
        assert math.isclose(math.sqrt(h * w), 32 * s, rel_tol=0.02)
        assert math.isclose(w / h, r, rel_tol=0.05)
    wins = sliding_windows_by_scale((100, 120), 32, [1.0, 2.0], [1.0, 2.0], stride=0.5)
    torch.testing.assert_close(wins, sliding_windows((100, 120), sizes, 0.5))
    with pytest.raises(ConfigError):
        window_sizes_from_scales(32, [0.0], [1.0])
