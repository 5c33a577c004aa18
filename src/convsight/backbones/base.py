"""The one feature contract every backbone keeps (timm's ``feature_info`` idea).

A backbone takes images ``(B, 3, H, W)`` float in ``[0, 1]``, normalises them itself (each net knows
the statistics it was trained with) and returns one feature map per selected level, in order of
increasing stride. ``feature_info`` says the name, channels and stride of each returned map, so any
head can be built from it without knowing which net is underneath.

Internally a backbone is a chain of *stages*: stage ``i`` ends at level ``i``. Stages deeper than the
deepest selected level are not built, so a VGG19 used up to ``relu4_4`` never runs block 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from convsight.errors import ConfigError
from convsight.registry import Registry

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

    from convsight.backbones.weights import LoadedWeights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: Registry = Registry("backbone")

Level = str | int  # a level's name (``"layer3"``) or its stride (``16``)


@dataclass(frozen=True)
class FeatureInfo:
    """One feature level: its name, number of channels and stride in input pixels."""

    name: str
    channels: int
    stride: int


def select_levels(levels: Sequence[FeatureInfo], wanted: Level | Sequence[Level] | None) -> list[int]:
    """Indices into ``levels`` (sorted by stride) for ``wanted`` names/strides; ``None`` means all."""
    if wanted is None:
        return list(range(len(levels)))
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    choices = ", ".join(f"{lv.name} (stride {lv.stride})" for lv in levels)
    picked: set[int] = set()
    for w in wanted:
        key = "name" if isinstance(w, str) else "stride"
        hits = [i for i, lv in enumerate(levels) if getattr(lv, key) == w]
        if len(hits) != 1:  # our level lists have unique strides, so 0 hits is the only real case
            raise ConfigError(f"no feature level {w!r}; choose names or strides from: {choices}")
        if hits[0] in picked:
            raise ConfigError(f"feature level {w!r} asked for twice")
        picked.add(hits[0])
    if not picked:
        raise ConfigError(f"out_levels is empty; choose names or strides from: {choices}")
    return sorted(picked)


class Backbone(nn.Module):
    """Images ``(B, 3, H, W)`` in ``[0, 1]`` -> list of feature maps ``(B, C_i, H / s_i, W / s_i)``.

    Args:
        arch: registry name (stored in saved weights to catch files for another net).
        stages: modules run in sequence; stage ``i`` produces level ``levels[i]``.
        levels: every level the net offers, by increasing stride.
        out_levels: names or strides to return (``None``: all of ``levels``).
        mean, std: per-channel normalisation applied inside ``forward``.
        source: the torchvision model the stages were taken from (to map its weight names to ours).
        imagenet_weights: torchvision weights enum holding ImageNet weights for ``source``.

    For inputs whose sides are multiples of 32 a level of stride ``s`` is exactly ``H / s`` high.
    """

    def __init__(
        self,
        arch: str,
        stages: Sequence[nn.Module],
        levels: Sequence[FeatureInfo],
        out_levels: Level | Sequence[Level] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        source: nn.Module | None = None,
        imagenet_weights: WeightsEnum | None = None,
    ) -> None:
        super().__init__()
        if len(stages) != len(levels):
            raise ValueError(f"{arch}: {len(stages)} stages but {len(levels)} levels")
        self.arch = arch
        self.all_levels = list(levels)
        self._selected = select_levels(levels, out_levels)
        self.feature_info = [levels[i] for i in self._selected]
        self.stages = nn.ModuleList(stages[: self._selected[-1] + 1])
        # Not persistent: the statistics belong to the architecture, not to a weights file.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.imagenet_weights = imagenet_weights
        self.source_keys = _source_key_map(self, source) if source is not None else {}
        self.frozen_stages = 0
        self.loaded_weights: LoadedWeights | None = None

    @property
    def out_channels(self) -> int:
        return self.feature_info[-1].channels

    @property
    def strides(self) -> list[int]:
        return [f.stride for f in self.feature_info]

    def normalize(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> the input statistics the net was trained with."""
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.arch}: expected images (B, 3, H, W), got {tuple(x.shape)}")
        x = self.normalize(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self._selected:
                feats.append(x)
        return feats

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        # Frozen BatchNorm: with small detection batches the running statistics would drift away
        # from the ImageNet ones the frozen weights expect, so they stay in eval mode.
        for stage in self.stages[: self.frozen_stages]:
            for m in stage.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def extra_repr(self) -> str:
        levels = ", ".join(f"{f.name}:{f.channels}@{f.stride}" for f in self.feature_info)
        return f"arch={self.arch!r}, levels=[{levels}]"


def _source_key_map(backbone: nn.Module, source: nn.Module) -> dict[str, str]:
    """Our state-dict key -> the key of the same tensor in ``source`` (matched by identity, so no
    hand-written renaming table can drift from the modules actually re-used)."""
    theirs = {id(t): k for k, t in source.state_dict(keep_vars=True).items()}
    mapping = {}
    for k, t in backbone.state_dict(keep_vars=True).items():
        if id(t) not in theirs:
            raise ValueError(f"{k} is not a tensor of the source model")
        mapping[k] = theirs[id(t)]
    return mapping


def freeze(backbone: Backbone, trainable_levels: int = 0) -> Backbone:
    """Stop gradients in all but the last ``trainable_levels`` stages and keep their BatchNorm in eval.

    Stages are counted from the deepest one built; ``0`` freezes everything. Returns ``backbone``.
    """
    n = len(backbone.stages)
    if not 0 <= trainable_levels <= n:
        raise ConfigError(f"trainable_levels must be in 0..{n} for {backbone.arch}, got {trainable_levels}")
    backbone.frozen_stages = n - trainable_levels
    for i, stage in enumerate(backbone.stages):
        for p in stage.parameters():
            p.requires_grad_(i >= backbone.frozen_stages)
    backbone.train(backbone.training)  # re-applies the eval mode of frozen BatchNorm
    return backbone


def unfreeze(backbone: Backbone) -> Backbone:
    """Make every parameter trainable again and let BatchNorm follow the backbone's mode."""
    backbone.frozen_stages = 0
    for p in backbone.parameters():
        p.requires_grad_(True)
    backbone.train(backbone.training)
    return backbone


def num_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
