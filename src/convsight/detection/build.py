"""``build_detector``: a detector by architecture name, from its config's defaults plus overrides."""

from __future__ import annotations

from typing import Any

from convsight.detection.base import DETECTORS, Detector
from convsight.detection.config import make_config, register_all, replace_config


def detector_names() -> list[str]:
    register_all()
    return DETECTORS.names()


def build_detector(arch: str, num_classes: int, config: Any = None, **overrides: Any) -> Detector:
    """Build ``arch`` for ``num_classes`` object classes (random or backbone-only weights) from
    ``config`` (default: the architecture's) with ``overrides``; the detector sets arch and the rest."""
    if config is None:
        config = make_config(arch, **overrides)
    elif overrides:
        config = replace_config(config, **overrides)
    return DETECTORS.get(arch)(num_classes, config)
