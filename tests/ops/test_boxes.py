"""Box formats, area, IoU, clipping, filtering and rescaling: hand-worked cases and properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convsight.errors import ConfigError
from convsight.ops import boxes as B

FORMATS = ("xyxy", "xywh", "cxcywh")


@st.composite
def xyxy_boxes(draw: st.DrawFn, min_n: int = 1, max_n: int = 8) -> torch.Tensor:
    """Valid xyxy boxes ``(N, 4)`` float64 with sides in [0.5, 60]."""
    rows = draw(
        st.lists(
            st.tuples(
                st.floats(-50, 150), st.floats(-50, 150), st.floats(0.5, 60), st.floats(0.5, 60)
            ),
            min_size=min_n,
            max_size=max_n,
        )
    )
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=torch.float64).reshape(-1, 4)


def _iou_reference(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_conversions_by_hand() -> None:
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert B.xyxy_to_xywh(xyxy).tolist() == [[10.0, 20.0, 20.0, 40.0]]
    assert B.xyxy_to_cxcywh(xyxy).tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert B.xywh_to_xyxy(torch.tensor([[10.0, 20.0, 20.0, 40.0]])).tolist() == xyxy.tolist()
    assert B.cxcywh_to_xyxy(torch.tensor([[20.0, 40.0, 20.0, 40.0]])).tolist() == xyxy.tolist()
    assert B.box_convert(xyxy, "xywh", "cxcywh").tolist() == [[25.0, 50.0, 30.0, 60.0]]  # x1 + w / 2, y1 + h / 2


@settings(max_examples=60, deadline=None)
@given(boxes=xyxy_boxes(), src=st.sampled_from(FORMATS), dst=st.sampled_from(FORMATS))
def test_conversions_round_trip(boxes: torch.Tensor, src: str, dst: str) -> None:
    start = B.box_convert(boxes, "xyxy", src)
    back = B.box_convert(B.box_convert(start, src, dst), dst, src)  # type: ignore[arg-type]
    torch.testing.assert_close(back, start)
    torch.testing.assert_close(B.box_convert(start, src, "xyxy"), boxes)  # type: ignore[arg-type]


def test_convert_keeps_leading_dims_and_rejects_unknown_format() -> None:
    boxes = torch.rand(2, 3, 4)
    assert B.xyxy_to_cxcywh(boxes).shape == (2, 3, 4)
    with pytest.raises(ConfigError, match="xyxyx"):
        B.box_convert(boxes, "xyxyx", "xywh")  # type: ignore[arg-type]


def test_area_and_iou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [10.0, 10.0, 11.0, 13.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 1.0], [20.0, 20.0, 21.0, 21.0]])
    assert B.box_area(a).tolist() == [4.0, 3.0]
    iou = B.box_iou(a, b)
    assert iou.shape == (2, 3)
    expected = torch.tensor([[1 / 7, 0.5, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(iou, expected)


def test_iou_of_empty_boxes_is_zero_not_nan() -> None:
    z = torch.zeros(2, 4)
    assert B.box_iou(z, z).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert B.box_iou(torch.zeros(0, 4), torch.rand(3, 4)).shape == (0, 3)


@settings(max_examples=80, deadline=None)
@given(a=xyxy_boxes(), b=xyxy_boxes())
def test_iou_properties(a: torch.Tensor, b: torch.Tensor) -> None:
    iou = B.box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert bool(((iou >= 0) & (iou <= 1 + 1e-12)).all())
    torch.testing.assert_close(iou, B.box_iou(b, a).T)
    torch.testing.assert_close(torch.diagonal(B.box_iou(a, a)), torch.ones(len(a), dtype=a.dtype))
    ref = torch.tensor([[_iou_reference(x, y) for y in b.tolist()] for x in a.tolist()], dtype=a.dtype)
    torch.testing.assert_close(iou, ref)


def test_clip_by_hand_and_size_is_h_w() -> None:
    boxes = torch.tensor([[-5.0, 3.0, 100.0, 50.5], [1.0, 2.0, 3.0, 4.0]])
    clipped = B.clip_boxes(boxes, (40, 60))  # H = 40, W = 60
    assert clipped.tolist() == [[0.0, 3.0, 60.0, 40.0], [1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ConfigError, match="image size"):
        B.clip_boxes(boxes, (0, 60))


@settings(max_examples=50, deadline=None)
@given(boxes=xyxy_boxes(), h=st.integers(1, 120), w=st.integers(1, 120))
def test_clip_property(boxes: torch.Tensor, h: int, w: int) -> None:
    c = B.clip_boxes(boxes, (h, w))
    assert bool((c[:, 0::2] >= 0).all() and (c[:, 0::2] <= w).all())
    assert bool((c[:, 1::2] >= 0).all() and (c[:, 1::2] <= h).all())
    inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 3] <= h)
    assert torch.equal(c[inside], boxes[inside])


def test_remove_small_boxes() -> None:
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 1.0, 9.0], [0.0, 0.0, 9.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    assert B.remove_small_boxes(boxes, 2.0).tolist() == [0, 2, 3]
    assert B.remove_small_boxes(boxes, 2.5).tolist() == [0]


def test_normalize_scale_expand_by_hand() -> None:
    box = torch.tensor([[20.0, 10.0, 100.0, 50.0]])
    size = (100, 200)  # H, W
    torch.testing.assert_close(B.normalize_boxes(box, size), torch.tensor([[0.1, 0.1, 0.5, 0.5]]))
    torch.testing.assert_close(B.denormalize_boxes(torch.tensor([[0.1, 0.1, 0.5, 0.5]]), size), box)
    torch.testing.assert_close(B.scale_boxes(box, (100, 200), (50, 400)), torch.tensor([[40.0, 5.0, 200.0, 25.0]]))
    torch.testing.assert_close(B.expand_boxes(box, 1.5), torch.tensor([[0.0, 0.0, 120.0, 60.0]]))
    with pytest.raises(ConfigError):
        B.expand_boxes(box, 0.0)


@settings(max_examples=50, deadline=None)
@given(boxes=xyxy_boxes(), h=st.integers(1, 500), w=st.integers(1, 500), h2=st.integers(1, 500), w2=st.integers(1, 500))
def test_normalize_and_scale_round_trip(boxes: torch.Tensor, h: int, w: int, h2: int, w2: int) -> None:
    torch.testing.assert_close(B.denormalize_boxes(B.normalize_boxes(boxes, (h, w)), (h, w)), boxes)
    there = B.scale_boxes(boxes, (h, w), (h2, w2))
    torch.testing.assert_close(B.scale_boxes(there, (h2, w2), (h, w)), boxes)
    # Resizing is the same as normalising in one size and denormalising in the other.
    torch.testing.assert_close(there, B.denormalize_boxes(B.normalize_boxes(boxes, (h, w)), (h2, w2)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_are_kept(dtype: torch.dtype) -> None:
    boxes = torch.tensor([[1.0, 2.0, 5.0, 9.0]], dtype=dtype)
    outs = [
        B.box_convert(boxes, "xyxy", "cxcywh"),
        B.box_area(boxes),
        B.box_iou(boxes, boxes),
        B.clip_boxes(boxes, (4, 4)),
        B.normalize_boxes(boxes, (10, 10)),
        B.denormalize_boxes(boxes, (10, 10)),
        B.scale_boxes(boxes, (10, 10), (20, 30)),
        B.expand_boxes(boxes, 2.0),
    ]
    for out in outs:
        assert out.dtype == dtype and out.device == boxes.device
