"""Box maths on ``(N, 4)`` tensors: format conversion, area, IoU, clipping, filtering and rescaling.

The house format is ``xyxy`` float in absolute pixels (``x1, y1, x2, y2`` with ``x2 >= x1``); ``xywh``
is ``x1, y1, w, h`` (COCO) and ``cxcywh`` is ``cx, cy, w, h`` (YOLO, DETR). Image sizes are always
``(H, W)``, as in torchvision. Every function keeps the input's device and (float) dtype and accepts
any leading batch shape ``(..., 4)`` unless its docstring says ``(N, 4)``.

Where torchvision already implements a function we call it, so there is one definition to trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torchvision import ops as tv_ops

from convsight.errors import ConfigError

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")

Size = tuple[int, int] | Sequence[int]  # (H, W)


def _check_size(size: Size, what: str = "image size") -> tuple[float, float]:
    if len(size) != 2 or not all(float(s) > 0 for s in size):
        raise ConfigError(f"{what} must be (H, W) with positive sides, got {tuple(size)}")
    return float(size[0]), float(size[1])


def box_convert(boxes: Tensor, in_fmt: BoxFormat, out_fmt: BoxFormat) -> Tensor:
    """Convert ``(..., 4)`` boxes between ``xyxy``, ``xywh`` and ``cxcywh``."""
    for fmt in (in_fmt, out_fmt):
        if fmt not in _FORMATS:
            raise ConfigError(f"unknown box format {fmt!r}; choose one of: {', '.join(_FORMATS)}")
    if in_fmt == out_fmt:
        return boxes.clone()
    # torchvision's box_convert unbinds the last dim, so it works for any leading shape.
    return tv_ops.box_convert(boxes, in_fmt=in_fmt, out_fmt=out_fmt)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``x1, y1, x2, y2`` -> ``x1, y1, w, h``."""
    return box_convert(boxes, "xyxy", "xywh")


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``x1, y1, w, h`` -> ``x1, y1, x2, y2``."""
    return box_convert(boxes, "xywh", "xyxy")


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``x1, y1, x2, y2`` -> ``cx, cy, w, h``."""
    return box_convert(boxes, "xyxy", "cxcywh")


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``cx, cy, w, h`` -> ``x1, y1, x2, y2``."""
    return box_convert(boxes, "cxcywh", "xyxy")


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``(...,)`` of ``(..., 4)`` xyxy boxes (negative for inverted boxes, as in torchvision)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU ``(N, M)`` of xyxy boxes ``(N, 4)`` and ``(M, 4)``.

    Two empty (zero-area) boxes have no union; torchvision returns NaN there, we return 0 so that
    matching and NMS never see NaN.
    """
    return torch.nan_to_num(tv_ops.box_iou(boxes1, boxes2), nan=0.0)


def clip_boxes(boxes: Tensor, size: Size) -> Tensor:
    """Clip ``(..., 4)`` xyxy boxes to an image of ``size = (H, W)``: ``0 <= x <= W``, ``0 <= y <= H``."""
    h, w = _check_size(size)
    return tv_ops.clip_boxes_to_image(boxes, (h, w))  # type: ignore[arg-type]  # floats work too


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices ``(K,)`` int64 of the ``(N, 4)`` boxes whose width and height are both ``>= min_size``."""
    return tv_ops.remove_small_boxes(boxes, float(min_size))


def _scale_vector(boxes: Tensor, sx: float, sy: float) -> Tensor:
    return torch.tensor((sx, sy, sx, sy), dtype=boxes.dtype, device=boxes.device)


def normalize_boxes(boxes: Tensor, size: Size) -> Tensor:
    """Absolute-pixel ``(..., 4)`` boxes -> coordinates in ``[0, 1]`` relative to ``size = (H, W)``."""
    h, w = _check_size(size)
    return boxes / _scale_vector(boxes, w, h)


def denormalize_boxes(boxes: Tensor, size: Size) -> Tensor:
    """Inverse of :func:`normalize_boxes`: ``[0, 1]`` ``(..., 4)`` boxes -> absolute pixels."""
    h, w = _check_size(size)
    return boxes * _scale_vector(boxes, w, h)


def scale_boxes(boxes: Tensor, from_size: Size, to_size: Size) -> Tensor:
    """Map ``(..., 4)`` boxes from an image of ``from_size = (H, W)`` to the same image resized to
    ``to_size`` (each axis scaled on its own, as when a resize ignores the aspect ratio)."""
    h0, w0 = _check_size(from_size, "from_size")
    h1, w1 = _check_size(to_size, "to_size")
    return boxes * _scale_vector(boxes, w1 / w0, h1 / h0)


def expand_boxes(boxes: Tensor, factor: float) -> Tensor:
    """Grow (``factor > 1``) or shrink ``(..., 4)`` boxes about their centres, keeping aspect ratio.

    R-CNN pads proposals with context this way, and face pipelines enlarge detections before cropping.
    """
    if factor <= 0:
        raise ConfigError(f"expand factor must be > 0, got {factor}")
    c = xyxy_to_cxcywh(boxes)
    c = torch.cat((c[..., :2], c[..., 2:] * factor), dim=-1)
    return cxcywh_to_xyxy(c)
