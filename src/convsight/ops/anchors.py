"""Anchors (Faster R-CNN) and default boxes (SSD) on any list of feature maps.

An anchor *type* is a (width, height) pair; every cell of a level's feature map gets one box of each
of the level's types, centred on the cell's centre ``((j + offset) * stride_x, (i + offset) * stride_y)``
in input pixels. Aspect ratio means ``w / h`` (SSD's ``a_r``): a type of size ``s`` and ratio ``r`` has
``w = s * sqrt(r)`` and ``h = s / sqrt(r)``, so ``sqrt(w * h) == s``.

**Order** (heads depend on it). :func:`grid_anchors` returns ``(sum_l H_l * W_l * A_l, 4)`` xyxy boxes:

1. level by level, in the order given;
2. within a level, cell by cell in row-major order (row ``i`` outer, column ``j`` inner);
3. within a cell, anchor type by type: for each size, for each aspect ratio; then the level's extra
   square box (SSD's ``sqrt(s_k * s_{k+1})``) if the config has one.

So a head whose conv emits ``(B, A * K, H, W)`` must be viewed as ``(B, A, K, H, W)``, permuted to
``(B, H, W, A, K)`` and reshaped to ``(B, H * W * A, K)`` before concatenating levels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor, nn

from convsight.errors import ConfigError

Stride = float | tuple[float, float]  # one stride, or (stride_y, stride_x)

SSD_ASPECT_RATIOS = (1.0, 2.0, 3.0, 1.0 / 2.0, 1.0 / 3.0)


def _per_level(values: Sequence[float] | Sequence[Sequence[float]], what: str) -> tuple[tuple[float, ...], ...]:
    """Normalise to a tuple of per-level tuples: ``((a, b), (c,))`` stays, a bare number ``a`` becomes
    ``(a,)`` (so a flat ``(a, b)`` means one value per level)."""
    out = []
    for v in values:
        vals = (v,) if isinstance(v, Real) else tuple(v)
        if not vals or not all(isinstance(x, Real) and math.isfinite(x) and x > 0 for x in vals):
            raise ConfigError(f"anchor {what} must be positive finite numbers, got {tuple(values)}")
        out.append(tuple(float(x) for x in vals))
    return tuple(out)


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor types per feature level.

    sizes: per level, the box sizes ``sqrt(w * h)`` in input pixels, e.g. ``((32,), (64,), (128,))``
        for an FPN or ``((128, 256, 512),)`` for Faster R-CNN's single level. A flat sequence
        ``(32, 64, 128)`` means one size per level.
    aspect_ratios: per level, ratios ``w / h``; a flat sequence ``(0.5, 1, 2)`` applies to every level.
    extra_sizes: optional, one per level: an extra square box of that size (SSD's
        ``sqrt(s_k * s_{k+1})`` times the image size), placed after the size x ratio types.
    offset: where the centre sits inside a cell, in cells (0.5 = the cell's centre).
    """

    sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    extra_sizes: tuple[float, ...] | None = None
    offset: float = 0.5

    def __post_init__(self) -> None:
        sizes = _per_level(self.sizes, "sizes")
        ratios = self.aspect_ratios
        if ratios and all(isinstance(r, Real) for r in ratios):
            ratios = (tuple(ratios),) * len(sizes)  # type: ignore[arg-type]
        ratios = _per_level(ratios, "aspect_ratios")
        if len(sizes) != len(ratios):
            raise ConfigError(f"anchor config has {len(sizes)} levels of sizes but {len(ratios)} of aspect ratios")
        extra = self.extra_sizes
        if extra is not None:
            extra = tuple(float(e) for e in extra)
            if len(extra) != len(sizes) or not all(math.isfinite(e) and e > 0 for e in extra):
                raise ConfigError(f"extra_sizes must be {len(sizes)} positive numbers (one per level), got {extra}")
        if not 0.0 <= self.offset <= 1.0:
            raise ConfigError(f"anchor offset must lie in [0, 1] (a fraction of a cell), got {self.offset}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "aspect_ratios", ratios)
        object.__setattr__(self, "extra_sizes", extra)

    @property
    def num_levels(self) -> int:
        return len(self.sizes)


def anchors_per_location(cfg: AnchorConfig, level: int) -> int:
    """Number of anchor types ``A_l`` at each cell of ``level``."""
    _check_level(cfg, level)
    return len(cfg.sizes[level]) * len(cfg.aspect_ratios[level]) + (cfg.extra_sizes is not None)


def _check_level(cfg: AnchorConfig, level: int) -> None:
    if not 0 <= level < cfg.num_levels:
        raise ConfigError(f"level {level} out of range: the anchor config has {cfg.num_levels} levels")


def anchor_shapes(
    cfg: AnchorConfig, level: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """``(A_l, 2)`` widths and heights of ``level``'s anchor types, in the documented type order."""
    _check_level(cfg, level)
    sizes = torch.tensor(cfg.sizes[level], dtype=torch.float64)
    root = torch.tensor(cfg.aspect_ratios[level], dtype=torch.float64).sqrt()
    w = (sizes[:, None] * root[None, :]).reshape(-1)  # (S * R,) size outer, ratio inner
    h = (sizes[:, None] / root[None, :]).reshape(-1)
    wh = torch.stack((w, h), dim=1)
    if cfg.extra_sizes is not None:
        e = cfg.extra_sizes[level]
        wh = torch.cat((wh, torch.tensor([[e, e]], dtype=torch.float64)))
    return wh.to(dtype=dtype, device=device)


def _stride_yx(stride: Stride) -> tuple[float, float]:
    sy, sx = (stride, stride) if isinstance(stride, Real) else tuple(stride)
    if not (sy > 0 and sx > 0):
        raise ConfigError(f"feature stride must be positive, got {stride}")
    return float(sy), float(sx)


def grid_anchors(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[Stride],
    cfg: AnchorConfig,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """All anchors of all levels as ``(sum_l H_l * W_l * A_l, 4)`` xyxy boxes in input pixels.

    feature_sizes: ``(H_l, W_l)`` per level; strides: input pixels per feature cell per level (a number,
    or ``(stride_y, stride_x)``; SSD's non-integer ``300 / 38`` is fine). Order: see the module doc.
    """
    if not len(feature_sizes) == len(strides) == cfg.num_levels:
        raise ConfigError(
            f"anchor config has {cfg.num_levels} levels but got {len(feature_sizes)} feature maps "
            f"and {len(strides)} strides"
        )
    per_level = []
    for level, ((fh, fw), stride) in enumerate(zip(feature_sizes, strides)):
        sy, sx = _stride_yx(stride)
        # Centres in float64 so that large maps and fractional strides stay exact before the final cast.
        cy = (torch.arange(int(fh), dtype=torch.float64, device=device) + cfg.offset) * sy
        cx = (torch.arange(int(fw), dtype=torch.float64, device=device) + cfg.offset) * sx
        yy, xx = torch.meshgrid(cy, cx, indexing="ij")  # (H, W) each, row-major
        centres = torch.stack((xx, yy, xx, yy), dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
        half = anchor_shapes(cfg, level, dtype=torch.float64, device=device) / 2  # (A, 2)
        deltas = torch.cat((-half, half), dim=1)  # (A, 4): -w/2, -h/2, +w/2, +h/2
        per_level.append((centres + deltas[None]).reshape(-1, 4))  # (H*W*A, 4)
    if not per_level:
        return torch.zeros((0, 4), dtype=dtype, device=device)
    return torch.cat(per_level).to(dtype)


def ssd_scales(num_levels: int, s_min: float = 0.2, s_max: float = 0.9) -> list[float]:
    """SSD's ``s_k = s_min + (s_max - s_min) (k - 1) / (m - 1)`` for ``k = 1..m`` (``m = num_levels``)."""
    if num_levels < 1:
        raise ConfigError(f"SSD needs at least one feature level, got {num_levels}")
    if not 0 < s_min <= s_max:
        raise ConfigError(f"SSD scales need 0 < s_min <= s_max, got s_min={s_min}, s_max={s_max}")
    if num_levels == 1:
        return [float(s_min)]
    step = (s_max - s_min) / (num_levels - 1)
    return [s_min + step * k for k in range(num_levels)]


def ssd_default_box_config(
    num_levels: int,
    s_min: float = 0.2,
    s_max: float = 0.9,
    image_size: int = 300,
    aspect_ratios: Sequence[float] | Sequence[Sequence[float]] = SSD_ASPECT_RATIOS,
    s_last_extra: float = 1.0,
) -> AnchorConfig:
    """SSD default boxes (Liu et al. 2016, sec. 2.2) for a square input of ``image_size`` pixels.

    Level ``k`` gets size ``s_k * image_size`` with ``aspect_ratios`` (default {1, 2, 3, 1/2, 1/3};
    per-level sequences allowed, e.g. SSD300 drops 3 and 1/3 on some levels) plus an extra square of
    ``sqrt(s_k * s_{k+1}) * image_size``. The paper leaves ``s_{m+1}`` open; like torchvision's
    ``DefaultBoxGenerator`` we use ``s_last_extra = 1.0``.
    """
    if image_size <= 0:
        raise ConfigError(f"SSD image_size must be positive, got {image_size}")
    scales = ssd_scales(num_levels, s_min, s_max)
    nxt = scales[1:] + [s_last_extra]
    return AnchorConfig(
        sizes=tuple((s * image_size,) for s in scales),
        aspect_ratios=aspect_ratios,  # type: ignore[arg-type]  # flat or per level, normalised in the config
        extra_sizes=tuple(math.sqrt(s * n) * image_size for s, n in zip(scales, nxt)),
    )


class AnchorGenerator(nn.Module):
    """Anchors for a batch's feature maps, cached per (map sizes, strides, device, dtype).

    strides: per level; when ``None``, each call needs ``image_size`` and uses ``image / feature`` per
    axis (what torchvision does, and what SSD needs: 300 / 38 is not an integer).
    forward(feature_maps ``[(B, C_l, H_l, W_l)]``, image_size ``(H, W)``) -> ``(sum_l H_l W_l A_l, 4)``,
    the same for every image of the batch (they share one padded size).
    """

    def __init__(self, cfg: AnchorConfig, strides: Sequence[Stride] | None = None, max_cache: int = 8) -> None:
        super().__init__()
        self.cfg = cfg
        self.strides = None if strides is None else tuple(strides)
        if self.strides is not None and len(self.strides) != cfg.num_levels:
            raise ConfigError(f"anchor config has {cfg.num_levels} levels but {len(self.strides)} strides")
        self.max_cache = max_cache
        self._cache: dict[tuple, Tensor] = {}

    def num_anchors_per_location(self) -> list[int]:
        return [anchors_per_location(self.cfg, lv) for lv in range(self.cfg.num_levels)]

    def forward(self, feature_maps: Sequence[Tensor], image_size: Sequence[int] | None = None) -> Tensor:
        sizes = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in feature_maps)
        if self.strides is not None:
            strides: tuple[Stride, ...] = self.strides
        elif image_size is None:
            raise ConfigError("AnchorGenerator was built without strides, so forward needs image_size=(H, W)")
        else:
            strides = tuple((image_size[0] / h, image_size[1] / w) for h, w in sizes)
        ref = feature_maps[0] if feature_maps else torch.empty(0)
        key = (sizes, strides, ref.device, ref.dtype)
        anchors = self._cache.get(key)
        if anchors is None:
            dtype = ref.dtype if ref.dtype.is_floating_point else torch.float32
            anchors = grid_anchors(sizes, strides, self.cfg, dtype=dtype, device=ref.device)
            if len(self._cache) >= self.max_cache:  # sizes vary in multi-scale training; keep memory bounded
                self._cache.clear()
            self._cache[key] = anchors
        return anchors
