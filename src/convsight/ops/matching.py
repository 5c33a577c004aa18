"""Assign anchors (or proposals) to ground-truth boxes by IoU, and sample balanced training batches.

:func:`match_boxes` follows torchvision's ``Matcher`` (``models/detection/_utils.py``):

- an anchor whose best IoU is ``>= high`` is matched to that gt (its index ``>= 0``);
- best IoU ``< low`` -> :data:`BACKGROUND` (-1); ``low <= IoU < high`` -> :data:`IGNORE` (-2);
- with ``allow_low_quality``, each gt's best anchor(s) (ties included) are matched as well, even below
  ``low`` — to the gt that anchor overlaps most, exactly as torchvision and py-faster-rcnn do. Unlike
  torchvision, a gt that overlaps no anchor at all (best IoU 0) promotes nothing: otherwise every
  anchor with IoU 0 would tie for "best" and turn foreground.

Typical settings: RPN ``high=0.7, low=0.3, allow_low_quality=True``; Fast R-CNN heads ``0.5, 0.5,
False``; SSD ``0.5, 0.5, True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from convsight.errors import ConfigError

BACKGROUND = -1
IGNORE = -2



def check_sampling(where: str, fg_iou: float, bg_iou: float, per_image: int, positive_fraction: float,
                   bg_name: str = "bg_iou", count_name: str = "rois_per_image") -> None:
    """The one check of a fg/bg sampler's settings (RPN, RoI head, R-CNN): ``0 <= bg <= fg <= 1``, at
    least one sample per image, a positive fraction in ``[0, 1]``; a :class:`ConfigError` naming ``where``."""
    if not 0.0 <= bg_iou <= fg_iou <= 1.0:
        raise ConfigError(f"{where}: need 0 <= {bg_name} <= fg_iou <= 1, got {bg_iou}, {fg_iou}")
    if per_image < 1 or not 0.0 <= positive_fraction <= 1.0:
        raise ConfigError(f"{where}: {count_name} must be >= 1 and positive_fraction in [0, 1]")

def _check_thresholds(high: float, low: float) -> None:
    if not low <= high:
        raise ConfigError(f"matcher thresholds need low <= high, got low={low}, high={high}")


def match_boxes(iou: Tensor, high: float, low: float, allow_low_quality: bool = False) -> Tensor:
    """Match each anchor to a gt box.

    iou: ``(G, A)`` IoU of every gt with every anchor. Returns ``(A,)`` int64: the matched gt's index,
    :data:`BACKGROUND` or :data:`IGNORE`. With ``G == 0`` every anchor is background.
    """
    _check_thresholds(high, low)
    if iou.ndim != 2:
        raise ValueError(f"iou must have shape (G, A), got {tuple(iou.shape)}")
    num_gt, num_anchors = iou.shape
    if num_gt == 0 or num_anchors == 0:
        return torch.full((num_anchors,), BACKGROUND, dtype=torch.int64, device=iou.device)

    best_iou, best_gt = iou.max(dim=0)  # (A,), (A,)
    matches = best_gt.clone()
    matches[best_iou < low] = BACKGROUND
    matches[(best_iou >= low) & (best_iou < high)] = IGNORE

    if allow_low_quality:
        best_per_gt = iou.max(dim=1).values[:, None]  # (G, 1)
        is_best = (iou == best_per_gt) & (best_per_gt > 0)  # (G, A), ties included
        promoted = is_best.any(dim=0)  # (A,)
        matches[promoted] = best_gt[promoted]
    return matches


@dataclass(frozen=True)
class MatcherConfig:
    """Thresholds for :func:`match_boxes` (defaults: Faster R-CNN's RPN)."""

    high: float = 0.7
    low: float = 0.3
    allow_low_quality: bool = True

    def __post_init__(self) -> None:
        _check_thresholds(self.high, self.low)

    def match(self, iou: Tensor) -> Tensor:
        """``(G, A)`` IoU -> ``(A,)`` matches; see :func:`match_boxes`."""
        return match_boxes(iou, self.high, self.low, self.allow_low_quality)


def sample_fg_bg(
    matches: Tensor,
    batch_size_per_image: int,
    positive_fraction: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Sample anchors for one image's loss, as Faster R-CNN's RPN and Fast R-CNN heads do.

    Up to ``batch_size_per_image * positive_fraction`` foreground anchors (``matches >= 0``) are drawn
    at random; background anchors (``matches == -1``) fill the rest of ``batch_size_per_image``. Ignored
    anchors are never drawn. Returns ``(pos_idx, neg_idx)``, int64 indices into ``matches (A,)`` on its
    device. The same ``generator`` state gives the same sample.
    """
    if batch_size_per_image < 0:
        raise ConfigError(f"batch_size_per_image must be >= 0, got {batch_size_per_image}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ConfigError(f"positive_fraction must lie in [0, 1], got {positive_fraction}")
    pos = torch.nonzero(matches >= 0).flatten()
    neg = torch.nonzero(matches == BACKGROUND).flatten()
    num_pos = min(int(batch_size_per_image * positive_fraction), pos.numel())
    num_neg = min(batch_size_per_image - num_pos, neg.numel())
    rand_device = generator.device if generator is not None else matches.device
    pick_pos = torch.randperm(pos.numel(), generator=generator, device=rand_device)[:num_pos]
    pick_neg = torch.randperm(neg.numel(), generator=generator, device=rand_device)[:num_neg]
    return pos[pick_pos.to(matches.device)], neg[pick_neg.to(matches.device)]
