"""Where detector files come from: the ones that ship with convsight, and the architecture names a
user may type (``faster-rcnn`` for ``faster_rcnn``). Light on purpose (no torch): the CLI reads it
for help text and errors before any model loads. The file format itself: :mod:`.serialize`."""

from __future__ import annotations

import importlib
import importlib.resources
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convsight.detection.defaults import DEFAULT_ARCH
from convsight.errors import ConfigError

SHIPPED_DIR = "assets/detectors"  # inside the convsight package, one <arch>.safetensors each

# What users type -> the registry name (the CLI's spelling of the seven methods).
ARCH_ALIASES = {"localize": "localization", "sliding": "sliding_window", "fast-rcnn": "fast_rcnn",
                "faster-rcnn": "faster_rcnn", "imagenet-localize": "imagenet_localize",
                "imagenet-sliding": "imagenet_sliding"}

# Detectors whose weights come from elsewhere than a convsight file (torchvision's COCO detectors,
# the ImageNet classifier that ships in a package): a name, or a prefix ending in ":", -> the
# "module:function" that loads one, imported only when asked for. The function is called as
# ``load(name, weights)`` (weights: a file the user named, or None for the default source) and
# returns ``(detector in eval mode on the CPU, class names, the file the weights came from)``.
PRETRAINED = {"tv:": "convsight.detection.tv:load_pretrained",
              "imagenet_localize": "convsight.detection.imagenet:load_pretrained",
              "imagenet_sliding": "convsight.detection.imagenet:load_pretrained"}


def canonical_arch(name: str) -> str:
    """``"faster-rcnn"`` -> ``"faster_rcnn"``; registry names pass through unchanged."""
    return ARCH_ALIASES.get(name, name)


def pretrained_loader(arch: str) -> Callable[..., Any] | None:
    """The loader of ``arch`` when its weights come from another package (:data:`PRETRAINED`), else None."""
    name = canonical_arch(arch)
    for key, target in PRETRAINED.items():
        if name == key or (key.endswith(":") and name.startswith(key)):
            module, _, function = target.partition(":")
            return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
    return None


def shipped_detector(arch: str) -> Path | None:
    """The detector weights file that ships with convsight for ``arch`` (or an alias), or None."""
    res = importlib.resources.files("convsight").joinpath(f"{SHIPPED_DIR}/{canonical_arch(arch)}.safetensors")
    return Path(str(res)) if res.is_file() else None


def shipped_detectors() -> list[str]:
    """Architectures with a shipped file, sorted."""
    folder = importlib.resources.files("convsight").joinpath(SHIPPED_DIR)
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(".safetensors") for p in folder.iterdir() if p.name.endswith(".safetensors"))


def detector_file(weights: str | os.PathLike[str] | None, arch: str | None = None) -> Path:
    """``weights`` when given, else the shipped file for ``arch`` (default :data:`DEFAULT_ARCH`);
    a :class:`ConfigError` naming what does ship when there is none."""
    if weights is not None:
        return Path(weights)
    name = canonical_arch(arch or DEFAULT_ARCH)
    path = shipped_detector(name)
    if path is None:
        have = ", ".join(shipped_detectors()) or "none yet"
        raise ConfigError(f"no shipped weights for {name!r} (shipped: {have}); "
                          "pass --weights FILE from `convsight detect train`")
    return path
