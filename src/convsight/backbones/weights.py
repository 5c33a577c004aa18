"""Weights for a backbone: ImageNet (offline-safe, see :mod:`convsight.weights` for the sources), a
user's file (strict; a truncated backbone ignores the deeper stages it did not build) or random init."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from convsight.errors import ConfigError, ConvsightWarning, WeightsError
from convsight.weights import (
    WeightsUnavailable,
    load_state_dict_checked,
    read_weights,
    save_state_dict,
    torchvision_state_dict,
)

if TYPE_CHECKING:
    from convsight.backbones.base import Backbone

_PRETRAINED = ("imagenet", "pretrained")
_RANDOM = ("random", "none", "")


@dataclass(frozen=True)
class LoadedWeights:
    """What a load actually did, for CLIs and logs to report.

    requested: the spec as given (``"imagenet"``, a path, ``"random"``); source: where the weights
    came from (``"random"``, ``"package:<path>"``, ``"cache:<path>"``, ``"download:<url>"``,
    ``"file:<path>"``); pretrained: whether trained weights are now in place.
    """

    arch: str
    requested: str
    source: str
    pretrained: bool

    def __str__(self) -> str:
        return f"{self.arch} weights: {self.source}"


def default_pretrained_backbone() -> str:
    """The backbone for transfer learning by default: its ImageNet weights ship offline."""
    return "mobilenet_v2"


def load_backbone_weights(
    backbone: Backbone, spec: str | os.PathLike[str] | None, *, allow_download: bool | None = None
) -> LoadedWeights:
    """Load weights into ``backbone`` from ``spec`` and record what happened in ``backbone.loaded_weights``.

    spec: ``"imagenet"``/``"pretrained"`` (torchvision's ImageNet weights, offline-safe: warns and
    keeps random init when unavailable), ``None``/``"random"`` (keep the construction-time random
    init, no warning), or a path to a ``.safetensors``/``.pth``/``.pt`` file (strict).
    """
    requested = "random" if spec is None else str(spec)
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in _RANDOM):
        record = LoadedWeights(backbone.arch, requested, "random", False)
    elif isinstance(spec, str) and spec.strip().lower() in _PRETRAINED:
        record = _load_imagenet(backbone, requested, allow_download)
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        state, metadata = read_weights(path)
        arch = metadata.get("arch")
        if arch and arch != backbone.arch:
            raise WeightsError(f"{path}: holds weights for backbone {arch!r}, not {backbone.arch!r}")
        load_state_dict_checked(backbone, _without_deeper_stages(state, len(backbone.stages)), str(path))
        record = LoadedWeights(backbone.arch, requested, f"file:{path}", True)
    else:
        raise ConfigError(f"weights must be 'imagenet', 'random' or a file path, got {spec!r}")
    backbone.loaded_weights = record
    return record


def _without_deeper_stages(state: dict[str, Tensor], built: int) -> dict[str, Tensor]:
    """A backbone truncated at a shallower level (Faster R-CNN stops at stride 16) builds fewer stages
    than the file was saved from: the deeper stages' weights are simply not needed. Everything else
    stays strict (missing keys, shapes, NaN)."""
    def stage(key: str) -> int | None:
        parts = key.split(".")
        return int(parts[1]) if len(parts) > 2 and parts[0] == "stages" and parts[1].isdigit() else None

    return {k: v for k, v in state.items() if (i := stage(k)) is None or i < built}


def _load_imagenet(backbone: Backbone, requested: str, allow_download: bool | None) -> LoadedWeights:
    random = LoadedWeights(backbone.arch, requested, "random", False)
    if backbone.imagenet_weights is None:
        warnings.warn(
            f"{backbone.arch} has no ImageNet weights; it keeps its random init "
            f"(use {default_pretrained_backbone()} for pretrained features offline)",
            ConvsightWarning,
            stacklevel=3,
        )
        return random
    try:
        theirs, source = torchvision_state_dict(backbone.imagenet_weights, allow_download=allow_download)
    except WeightsUnavailable as e:
        warnings.warn(f"{backbone.arch}: {e}; using random init instead", ConvsightWarning, stacklevel=3)
        return random
    state = {}
    for ours, key in backbone.source_keys.items():
        if key not in theirs:
            raise WeightsError(f"{source}: weights do not fit {backbone.arch}: missing key {key!r}")
        state[ours] = theirs[key]
    load_state_dict_checked(backbone, state, source)
    return LoadedWeights(backbone.arch, requested, source, True)


def save_backbone_weights(backbone: Backbone, path: str | os.PathLike[str]) -> Path:
    """Save ``backbone``'s weights as ``.safetensors`` (atomically), tagged with its architecture."""
    levels = ",".join(lv.name for lv in backbone.all_levels[: len(backbone.stages)])
    metadata = {"format": "convsight.backbone", "arch": backbone.arch, "levels": levels}
    return save_state_dict(backbone.state_dict(), path, metadata)
