"""Where detector files come from: the ones that ship with convsight, and the architecture names a
user may type (``faster-rcnn`` for ``faster_rcnn``). Light on purpose (no torch): the CLI reads it
for help text and errors before any model loads. The file format itself: :mod:`.serialize`."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from convsight.detection.defaults import DEFAULT_ARCH
from convsight.errors import ConfigError

SHIPPED_DIR = "assets/detectors"  # inside the convsight package, one <arch>.safetensors each

# What users type -> the registry name (the CLI's spelling of the seven methods).
ARCH_ALIASES = {"localize": "localization", "sliding": "sliding_window", "fast-rcnn": "fast_rcnn",
                "faster-rcnn": "faster_rcnn"}


def canonical_arch(name: str) -> str:
    """``"faster-rcnn"`` -> ``"faster_rcnn"``; registry names pass through unchanged."""
    return ARCH_ALIASES.get(name, name)


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
