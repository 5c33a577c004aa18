"""``build_detector``: a detector by architecture name, from its config's defaults plus overrides."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from convsight.detection.base import CONFIGS, DETECTORS, Detector
from convsight.errors import ConfigError

# Method modules, imported on first use for their registrations (no import-time cost for `convsight --help`).
_MODULES = ("localization", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "yolo", "ssd")


def _register_all() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(f"convsight.detection.{name}")
        except ModuleNotFoundError as e:  # a method not written yet must not break the others
            if e.name != f"convsight.detection.{name}":
                raise


def detector_names() -> list[str]:
    _register_all()
    return DETECTORS.names()


def make_config(arch: str, **overrides: Any) -> Any:
    """The config of ``arch`` with ``overrides`` (unknown keys -> :class:`ConfigError` listing the valid ones)."""
    _register_all()
    DETECTORS.get(arch)  # unknown arch -> ConfigError with the choices
    cls = CONFIGS[arch]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"{arch}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return cls(**overrides)


def build_detector(arch: str, num_classes: int, config: Any = None, **overrides: Any) -> Detector:
    """Build ``arch`` for ``num_classes`` object classes; ``config`` or ``overrides`` of its defaults."""
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    cfg = config if config is not None else make_config(arch, **overrides)
    if config is not None and overrides:
        cfg = dataclasses.replace(config, **overrides)
    model = DETECTORS.get(arch)(num_classes, cfg)
    model.arch, model.config, model.num_classes = arch, cfg, num_classes
    return model
