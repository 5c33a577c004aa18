"""Anchors and SSD default boxes: counts, order, centres, shapes, and agreement with torchvision."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import AnchorGenerator as TvAnchorGenerator
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from convsight.errors import ConfigError
from convsight.ops.anchors import (
    AnchorConfig,
    AnchorGenerator,
    anchor_shapes,
    anchors_per_location,
    grid_anchors,
    ssd_default_box_config,
    ssd_scales,
)


def _sort_per_location(anchors: torch.Tensor, num_types: int) -> torch.Tensor:
    """``(L * A, 4)`` -> ``(L, A, 4)`` with each location's anchors sorted by (width, height)."""
    a = anchors.reshape(-1, num_types, 4).double()
    wh = a[..., 2:] - a[..., :2]
    key = wh[..., 0] * 1e4 + wh[..., 1]
    order = key.argsort(dim=1)
    return torch.gather(a, 1, order[..., None].expand(-1, -1, 4))


def test_tiny_grid_by_hand() -> None:
    cfg = AnchorConfig(sizes=((4,),), aspect_ratios=((1.0,),))
    anchors = grid_anchors([(2, 2)], [10], cfg)
    # Row-major cells, centres at (j + 0.5) * 10, (i + 0.5) * 10, boxes 4 x 4.
    assert anchors.tolist() == [[3, 3, 7, 7], [13, 3, 17, 7], [3, 13, 7, 17], [13, 13, 17, 17]]


def test_type_order_by_hand() -> None:
    cfg = AnchorConfig(sizes=((2, 4),), aspect_ratios=((1.0, 4.0),), extra_sizes=(6,))
    wh = anchor_shapes(cfg, 0)
    # size outer, ratio (w / h) inner, then the extra square.
    expected = [[2, 2], [4, 1], [4, 4], [8, 2], [6, 6]]
    torch.testing.assert_close(wh, torch.tensor(expected, dtype=torch.float32))
    assert anchors_per_location(cfg, 0) == 5


def test_counts_per_level_and_flat_shorthands() -> None:
    cfg = AnchorConfig(sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0))
    assert cfg.sizes == ((32.0,), (64.0,), (128.0,))
    assert cfg.aspect_ratios == ((0.5, 1.0, 2.0),) * 3
    assert [anchors_per_location(cfg, lv) for lv in range(3)] == [3, 3, 3]
    feats = [(8, 6), (4, 3), (2, 2)]
    anchors = grid_anchors(feats, [8, 16, 32], cfg)
    assert anchors.shape == (8 * 6 * 3 + 4 * 3 * 3 + 2 * 2 * 3, 4)
    with pytest.raises(ConfigError, match="level 3 out of range"):
        anchors_per_location(cfg, 3)


@st.composite
def anchor_setups(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[float], AnchorConfig]:
    n = draw(st.integers(1, 3))
    feats = [(draw(st.integers(1, 5)), draw(st.integers(1, 5))) for _ in range(n)]
    strides = [draw(st.sampled_from([4, 8, 16, 300 / 38, 12.5])) for _ in range(n)]
    sizes = tuple(tuple(draw(st.lists(st.floats(4, 300), min_size=1, max_size=3))) for _ in range(n))
    ratios = tuple(tuple(draw(st.lists(st.floats(0.2, 5), min_size=1, max_size=3))) for _ in range(n))
    extra = tuple(draw(st.floats(4, 300)) for _ in range(n)) if draw(st.booleans()) else None
    return feats, strides, AnchorConfig(sizes=sizes, aspect_ratios=ratios, extra_sizes=extra)


@settings(max_examples=60, deadline=None)
@given(setup=anchor_setups())
def test_grid_properties(setup: tuple[list[tuple[int, int]], list[float], AnchorConfig]) -> None:
    feats, strides, cfg = setup
    anchors = grid_anchors(feats, strides, cfg, dtype=torch.float64)
    counts = [h * w * anchors_per_location(cfg, lv) for lv, (h, w) in enumerate(feats)]
    assert anchors.shape == (sum(counts), 4)
    for lv, chunk in enumerate(anchors.split(counts)):
        (h, w), s = feats[lv], strides[lv]
        a = chunk.reshape(h, w, -1, 4)  # level -> row -> column -> type
        centres = (a[..., :2] + a[..., 2:]) / 2
        expect_x = (torch.arange(w, dtype=torch.float64) + 0.5) * s
        expect_y = (torch.arange(h, dtype=torch.float64) + 0.5) * s
        torch.testing.assert_close(centres[..., 0], expect_x[None, :, None].expand_as(centres[..., 0]))
        torch.testing.assert_close(centres[..., 1], expect_y[:, None, None].expand_as(centres[..., 1]))
        wh = a[0, 0, :, 2:] - a[0, 0, :, :2]  # (A, 2), same at every cell
        torch.testing.assert_close((a[..., 2:] - a[..., :2]), wh.expand_as(a[..., 2:]))
        i = 0
        for size in cfg.sizes[lv]:
            for ratio in cfg.aspect_ratios[lv]:
                assert math.isclose(float(wh[i, 0] / wh[i, 1]), ratio, rel_tol=1e-9)
                assert math.isclose(float((wh[i, 0] * wh[i, 1]).sqrt()), size, rel_tol=1e-9)
                i += 1
        if cfg.extra_sizes is not None:
            assert wh[i].tolist() == pytest.approx([cfg.extra_sizes[lv]] * 2)
            i += 1
        assert i == wh.shape[0]


def test_rectangular_stride_and_offset() -> None:
    cfg = AnchorConfig(sizes=((2,),), aspect_ratios=((1.0,),), offset=0.0)
    anchors = grid_anchors([(2, 2)], [(10, 4)], cfg)  # stride_y = 10, stride_x = 4
    assert anchors.tolist() == [[-1, -1, 1, 1], [3, -1, 5, 1], [-1, 9, 1, 11], [3, 9, 5, 11]]


def test_matches_torchvision_anchor_generator() -> None:
    # torchvision: ratio = h / w, anchors centred at the cell's top-left corner, half-sides rounded.
    sizes, tv_ratios = ((32, 64), (128,)), ((0.5, 1.0, 2.0), (0.5, 1.0, 2.0))
    tv = TvAnchorGenerator(sizes, tv_ratios)
    feats, strides = [(3, 4), (2, 2)], [8, 16]
    expected = tv.grid_anchors([list(f) for f in feats], [[torch.tensor(s), torch.tensor(s)] for s in strides])
    ours_cfg = AnchorConfig(sizes=sizes, aspect_ratios=tuple(tuple(1 / r for r in rs) for rs in tv_ratios), offset=0.0)
    ours = grid_anchors(feats, strides, ours_cfg)
    counts = [h * w * anchors_per_location(ours_cfg, lv) for lv, (h, w) in enumerate(feats)]
    for lv, chunk in enumerate(ours.split(counts)):
        num_types = anchors_per_location(ours_cfg, lv)
        torch.testing.assert_close(
            _sort_per_location(chunk, num_types), _sort_per_location(expected[lv], num_types), atol=0.5, rtol=0
        )


def test_ssd_scales_by_hand() -> None:
    assert ssd_scales(6) == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9])
    assert ssd_scales(1, 0.3) == [0.3]
    cfg = ssd_default_box_config(6, image_size=300)
    assert [anchors_per_location(cfg, lv) for lv in range(6)] == [6] * 6
    assert cfg.sizes[0] == pytest.approx((60.0,))
    assert cfg.extra_sizes is not None
    assert cfg.extra_sizes[0] == pytest.approx(math.sqrt(0.2 * 0.34) * 300)
    assert cfg.extra_sizes[-1] == pytest.approx(math.sqrt(0.9 * 1.0) * 300)
    assert cfg.aspect_ratios[2] == pytest.approx((1, 2, 3, 1 / 2, 1 / 3))
    with pytest.raises(ConfigError):
        ssd_scales(3, 0.9, 0.2)


def test_ssd_matches_torchvision_default_boxes() -> None:
    image_size, feats = 300, [(5, 5), (3, 3), (1, 1)]
    tv = DefaultBoxGenerator([[2, 3]] * 3, min_ratio=0.2, max_ratio=0.9, clip=False)
    maps = [torch.zeros(1, 1, h, w) for h, w in feats]
    expected = tv(ImageList(torch.zeros(1, 3, image_size, image_size), [(image_size, image_size)]), maps)[0]
    cfg = ssd_default_box_config(3, 0.2, 0.9, image_size=image_size)
    ours = AnchorGenerator(cfg)(maps, image_size=(image_size, image_size))
    assert ours.shape == expected.shape
    torch.testing.assert_close(_sort_per_location(ours, 6), _sort_per_location(expected, 6), atol=1e-3, rtol=0)


def test_anchor_generator_module_caches_and_agrees() -> None:
    cfg = AnchorConfig(sizes=(16, 32), aspect_ratios=(0.5, 1.0, 2.0))
    gen = AnchorGenerator(cfg, strides=[8, 16])
    maps = [torch.zeros(2, 4, 6, 5), torch.zeros(2, 4, 3, 3)]
    first = gen(maps)
    assert gen(maps) is first  # cached
    torch.testing.assert_close(first, grid_anchors([(6, 5), (3, 3)], [8, 16], cfg))
    assert gen.num_anchors_per_location() == [3, 3]
    doubled = gen([m.double() for m in maps])
    assert doubled.dtype == torch.float64 and doubled is not first
    # Without strides, image / feature per axis is used.
    inferred = AnchorGenerator(cfg)(maps, image_size=(48, 40))
    torch.testing.assert_close(inferred, grid_anchors([(6, 5), (3, 3)], [8, (16, 40 / 3)], cfg))
    with pytest.raises(ConfigError, match="image_size"):
        AnchorGenerator(cfg)(maps)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="levels"):
        AnchorConfig(sizes=((16,), (32,)), aspect_ratios=((1.0,), (1.0,), (2.0,)))
    with pytest.raises(ConfigError, match="positive"):
        AnchorConfig(sizes=((0,),), aspect_ratios=(1.0,))
    with pytest.raises(ConfigError, match="extra_sizes"):
        AnchorConfig(sizes=(16, 32), aspect_ratios=(1.0,), extra_sizes=(20,))
    cfg = AnchorConfig(sizes=(16, 32), aspect_ratios=(1.0,))
    with pytest.raises(ConfigError, match="2 levels"):
        grid_anchors([(2, 2)], [8], cfg)
    with pytest.raises(ConfigError, match="stride"):
        grid_anchors([(2, 2), (1, 1)], [8, 0], cfg)
