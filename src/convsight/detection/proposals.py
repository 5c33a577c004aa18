"""Region proposals for R-CNN and Fast R-CNN: OpenCV's selective search (Uijlings et al.), fast mode.

Selective search is slow (a few hundred ms per 256-px image on one core) and does not learn, so
training caches its boxes per image: :class:`ProposalCache` computes them once per image content
and keeps them in memory (and optionally on disk as one ``.pt`` file per image hash, which R-CNN and
Fast R-CNN share: ``--set proposal_cache=DIR``). The cache is flip-equivariant: an image and its
horizontal mirror share one selective-search run (on whichever of the two has the smaller hash; the
other gets the mirrored boxes), so training with random flips costs one run per image, not two, and
the boxes an image gets do not depend on which orientation the training happened to see first.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from convsight.errors import ConfigError
from convsight.io.atomic import atomic_path
from convsight.ops.boxes import box_iou

# What R-CNN and Fast R-CNN take as proposer: ProposalCache, or any such callable (tests use jittered gt).
Proposer = Callable[[Tensor], Tensor]  # image (3, H, W) in [0, 1] -> proposals (N, 4) xyxy pixels


@dataclass(frozen=True)
class ProposalConfig:
    """max_proposals: cap (R-CNN used ~2000); mode: ``"fast"`` or ``"quality"``; min_size: drop boxes
    with a side below this (pixels); dedup_iou: drop near-duplicates above this IoU (1.0 keeps all)."""

    max_proposals: int = 2000
    mode: str = "fast"
    min_size: float = 4.0
    dedup_iou: float = 0.95

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "quality"):
            raise ConfigError(f"selective search mode must be 'fast' or 'quality', got {self.mode!r}")
        if self.max_proposals < 1:
            raise ConfigError(f"max_proposals must be >= 1, got {self.max_proposals}")


def selective_search(image: Tensor | np.ndarray, config: ProposalConfig = ProposalConfig()) -> Tensor:
    """Proposals for one image: ``(3, H, W)`` float in ``[0, 1]`` or ``(H, W, 3)`` uint8 RGB ->
    ``(N, 4)`` float32 xyxy absolute pixels, N <= ``config.max_proposals``, in selective search's own
    order (roughly from the hierarchy's coarse groupings to fine ones)."""
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an image (3, H, W), got {tuple(image.shape)}")
        rgb = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    else:
        rgb = image
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if config.mode == "fast":
        ss.switchToSelectiveSearchFast()
    else:
        ss.switchToSelectiveSearchQuality()
    _seed_libc_rand(0)  # OpenCV ranks regions with libc rand(): seed it so the order repeats
    rects = ss.process()  # (N, 4) int x, y, w, h
    if len(rects) == 0:
        return torch.zeros((0, 4))
    r = torch.as_tensor(np.asarray(rects, dtype=np.float32))
    boxes = torch.cat([r[:, :2], r[:, :2] + r[:, 2:]], 1)
    boxes = boxes[(r[:, 2] >= config.min_size) & (r[:, 3] >= config.min_size)]
    if config.dedup_iou < 1.0 and len(boxes):
        boxes = _dedup(boxes, config.dedup_iou, config.max_proposals)
    return boxes[: config.max_proposals].contiguous()


def _seed_libc_rand(seed: int) -> None:
    # cv2.setRNGSeed does not reach selective search's ranking, which calls the C library's rand().
    try:
        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError):  # no C library symbols to reach (not Linux/macOS): order may vary
        pass


def _dedup(boxes: Tensor, iou: float, cap: int) -> Tensor:
    """Keep the first of each group of near-identical boxes (greedy, in order), stop at ``cap``."""
    kept: list[int] = []
    ious = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) == cap:
            break
        suppressed |= ious[i] > iou
    return boxes[kept]


class ProposalCache:
    """Selective-search boxes per image, computed once per image content (hash of the pixels) and
    shared with the image's horizontal mirror (see the module doc).

    folder: where to keep them between runs and processes (``None``: memory only).
    """

    def __init__(self, config: ProposalConfig = ProposalConfig(), folder: str | os.PathLike[str] | None = None) -> None:
        self.config = config
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, Tensor] = {}

    def _key(self, image: Tensor) -> str:
        h = hashlib.sha1(repr((self.config, tuple(image.shape))).encode())
        h.update((image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def __call__(self, image: Tensor) -> Tensor:
        """``(3, H, W)`` -> ``(N, 4)`` proposals (cached)."""
        key = self._key(image)
        if key in self._memory:
            return self._memory[key]
        mirror = image.flip(-1)
        mirror_key = self._key(mirror)
        if key <= mirror_key:  # this orientation is the canonical one: its own run
            boxes = self._load_or_compute(key, image)
        else:  # x -> W - x, and the two x's swap so that x1 <= x2 still holds
            flipped = self._load_or_compute(mirror_key, mirror)
            boxes = torch.stack([image.shape[-1] - flipped[:, 2], flipped[:, 1],
                                 image.shape[-1] - flipped[:, 0], flipped[:, 3]], 1)
        self._memory[key] = boxes
        return boxes

    def _load_or_compute(self, key: str, image: Tensor) -> Tensor:
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"{key}.pt" if self.folder is not None else None
        if path is not None and path.is_file():
            boxes = torch.load(path, weights_only=True)
        else:
            boxes = selective_search(image, self.config)
            if path is not None:
                with atomic_path(path) as tmp:
                    torch.save(boxes, tmp)
        self._memory[key] = boxes
        return boxes

    def batch(self, images: Tensor) -> list[Tensor]:
        """``(B, 3, H, W)`` -> B proposal tensors ``(N_i, 4)``."""
        return [self(im) for im in images]
