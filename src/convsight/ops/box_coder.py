"""Box regression targets: the (dx, dy, dw, dh) parametrisation of R-CNN / Faster R-CNN / SSD.

For an anchor (or proposal) with centre ``(ax, ay)`` and size ``(aw, ah)`` and a box ``(gx, gy, gw, gh)``::

    dx = wx * (gx - ax) / aw      dw = ww * log(gw / aw)
    dy = wy * (gy - ay) / ah      dh = wh * log(gh / ah)

The weights ``(wx, wy, ww, wh)`` only rescale the targets so their spread suits the loss: Fast/Faster
R-CNN heads use ``(10, 10, 5, 5)``, the RPN ``(1, 1, 1, 1)``, and SSD's "variances" ``(0.1, 0.1, 0.2,
0.2)`` are the reciprocals, i.e. the same ``(10, 10, 5, 5)``. Widths are ``x2 - x1`` (no ``+ 1``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from convsight.errors import ConfigError

Weights = tuple[float, float, float, float]

# exp() of a predicted dw/dh above this would make a box over 1000/16 times its anchor: cap it so an
# untrained head cannot overflow to inf (Detectron's choice, kept by torchvision).
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _centres_sizes(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    # Tiny floor on sizes: a degenerate box gives a large finite log instead of -inf / NaN targets.
    eps = torch.finfo(boxes.dtype).eps
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=eps)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=eps)
    return 0.5 * (boxes[..., 0] + boxes[..., 2]), 0.5 * (boxes[..., 1] + boxes[..., 3]), w, h


def encode_boxes(boxes: Tensor, anchors: Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Offsets ``(..., 4)`` that turn ``anchors`` into ``boxes`` (both xyxy ``(..., 4)``, broadcastable)."""
    wx, wy, ww, wh = weights
    gx, gy, gw, gh = _centres_sizes(boxes)
    ax, ay, aw, ah = _centres_sizes(anchors)
    return torch.stack(
        (wx * (gx - ax) / aw, wy * (gy - ay) / ah, ww * torch.log(gw / aw), wh * torch.log(gh / ah)), dim=-1
    )


def decode_boxes(
    offsets: Tensor,
    anchors: Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    scale_clamp: float = DEFAULT_SCALE_CLAMP,
) -> Tensor:
    """Apply ``offsets (..., 4)`` to xyxy ``anchors (..., 4)`` (broadcastable); returns xyxy ``(..., 4)``.

    For class-specific regression ``(N, K, 4)`` pass ``anchors[:, None]``. ``dw``/``dh`` are clamped
    to ``scale_clamp`` before ``exp``.
    """
    wx, wy, ww, wh = weights
    ax, ay, aw, ah = _centres_sizes(anchors)
    cx = offsets[..., 0] / wx * aw + ax
    cy = offsets[..., 1] / wy * ah + ay
    w = torch.exp((offsets[..., 2] / ww).clamp(max=scale_clamp)) * aw
    h = torch.exp((offsets[..., 3] / wh).clamp(max=scale_clamp)) * ah
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


@dataclass(frozen=True)
class BoxCoder:
    """Encoder/decoder with fixed weights ``(wx, wy, ww, wh)`` and a clamp on decoded ``dw``/``dh``."""

    weights: Weights = (10.0, 10.0, 5.0, 5.0)
    scale_clamp: float = DEFAULT_SCALE_CLAMP

    def __post_init__(self) -> None:
        w = tuple(float(x) for x in self.weights)
        if len(w) != 4 or not all(math.isfinite(x) and x > 0 for x in w):
            raise ConfigError(f"box coder weights must be 4 positive numbers (wx, wy, ww, wh), got {self.weights}")
        object.__setattr__(self, "weights", w)

    @classmethod
    def from_variances(cls, variances: Sequence[float] = (0.1, 0.1, 0.2, 0.2)) -> BoxCoder:
        """SSD's centre/size variances ``(vx, vy, vw, vh)`` are the reciprocals of our weights."""
        if len(variances) != 4 or not all(v > 0 for v in variances):
            raise ConfigError(f"SSD variances must be 4 positive numbers, got {tuple(variances)}")
        return cls(weights=tuple(1.0 / v for v in variances))  # type: ignore[arg-type]

    def encode(self, gt_boxes: Tensor, anchors: Tensor) -> Tensor:
        """Regression targets ``(N, 4)`` for matched ``gt_boxes (N, 4)`` and their ``anchors (N, 4)``."""
        return encode_boxes(gt_boxes, anchors, self.weights)

    def decode(self, offsets: Tensor, anchors: Tensor) -> Tensor:
        """Boxes ``(N, 4)`` xyxy from predicted ``offsets (N, 4)`` and ``anchors (N, 4)``."""
        return decode_boxes(offsets, anchors, self.weights, self.scale_clamp)
