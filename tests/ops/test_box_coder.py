"""Box coding: hand-worked offsets, round trips, the exp clamp, and agreement with torchvision."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder as TvBoxCoder

from convsight.errors import ConfigError
from convsight.ops.box_coder import DEFAULT_SCALE_CLAMP, BoxCoder, decode_boxes, encode_boxes


@st.composite
def box_pairs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching ``(N, 4)`` float32 boxes and anchors with sides in [2, 100]: size ratios stay below the
    decode clamp (1000 / 16), which would otherwise (rightly) cap the round trip."""
    n = draw(st.integers(1, 8))

    def one() -> list[float]:
        x, y = draw(st.floats(-100, 500)), draw(st.floats(-100, 500))
        return [x, y, x + draw(st.floats(2, 100)), y + draw(st.floats(2, 100))]

    boxes = torch.tensor([one() for _ in range(n)], dtype=torch.float32)
    anchors = torch.tensor([one() for _ in range(n)], dtype=torch.float32)
    return boxes, anchors


def test_encode_by_hand() -> None:
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    # Shift by half a side, same size: (0.5, 0.5, 0, 0).
    shifted = torch.tensor([[5.0, 5.0, 15.0, 15.0]])
    torch.testing.assert_close(encode_boxes(shifted, anchor), torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
    # Twice as wide, centred at x = 10 (anchor's at 5): dx = 5 / 10, dw = log 2.
    wide = torch.tensor([[0.0, 0.0, 20.0, 10.0]])
    torch.testing.assert_close(encode_boxes(wide, anchor), torch.tensor([[0.5, 0.0, math.log(2), 0.0]]))
    # Weights only scale each component.
    weighted = BoxCoder((10, 10, 5, 5)).encode(wide, anchor)
    torch.testing.assert_close(weighted, torch.tensor([[5.0, 0.0, 5 * math.log(2), 0.0]]))


def test_decode_by_hand() -> None:
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    out = decode_boxes(torch.tensor([[0.5, -0.5, math.log(2), 0.0]]), anchor)
    torch.testing.assert_close(out, torch.tensor([[0.0, -5.0, 20.0, 5.0]]))


@settings(max_examples=80, deadline=None)
@given(pair=box_pairs(), weights=st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 7.0)]))
def test_round_trip(pair: tuple[torch.Tensor, torch.Tensor], weights: tuple[float, float, float, float]) -> None:
    boxes, anchors = pair
    coder = BoxCoder(weights)
    back = coder.decode(coder.encode(boxes, anchors), anchors)
    scale = (boxes[:, 2:] - boxes[:, :2]).max(dim=1, keepdim=True).values
    assert bool(((back - boxes).abs() <= 1e-3 * scale.clamp(min=1.0) + 1e-3).all()), (back, boxes)


@settings(max_examples=50, deadline=None)
@given(pair=box_pairs())
def test_matches_torchvision(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    boxes, anchors = pair
    weights = (10.0, 10.0, 5.0, 5.0)
    tv = TvBoxCoder(weights)
    ours = BoxCoder(weights)
    torch.testing.assert_close(ours.encode(boxes, anchors), tv.encode_single(boxes, anchors), rtol=1e-4, atol=1e-4)
    offsets = torch.randn(len(anchors), 4)
    torch.testing.assert_close(ours.decode(offsets, anchors), tv.decode_single(offsets, anchors), rtol=1e-4, atol=1e-3)


def test_decode_clamps_huge_sizes() -> None:
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = decode_boxes(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchor)
    assert bool(torch.isfinite(out).all())
    side = 16 * math.exp(DEFAULT_SCALE_CLAMP)  # = 1000 px
    torch.testing.assert_close(out, torch.tensor([[8 - side / 2, 8 - side / 2, 8 + side / 2, 8 + side / 2]]))


def test_degenerate_boxes_give_finite_targets() -> None:
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 2)
    gt = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.0, 8.0]])
    assert bool(torch.isfinite(encode_boxes(gt, anchors, (10, 10, 5, 5))).all())


def test_variances_broadcast_and_dtype() -> None:
    assert BoxCoder.from_variances((0.1, 0.1, 0.2, 0.2)).weights == pytest.approx((10, 10, 5, 5))
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 25.0, 15.0]], dtype=torch.float64)
    offsets = torch.randn(2, 3, 4, dtype=torch.float64)  # class-specific: (N, K, 4)
    out = decode_boxes(offsets, anchors[:, None])
    assert out.shape == (2, 3, 4) and out.dtype == torch.float64
    for k in range(3):
        torch.testing.assert_close(out[:, k], decode_boxes(offsets[:, k], anchors))


def test_bad_weights() -> None:
    with pytest.raises(ConfigError, match="weights"):
        BoxCoder((1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="variances"):
        BoxCoder.from_variances((0.1, 0.1, 0.2))
