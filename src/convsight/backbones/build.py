"""``build_backbone``: a backbone by registry name, with its weights loaded from a spec."""

from __future__ import annotations

import os
from collections.abc import Sequence

# Imported for their registrations in BACKBONES.
from convsight.backbones import mobilenet, resnet, tiny, vgg  # noqa: F401
from convsight.backbones.base import BACKBONES, Backbone, Level
from convsight.backbones.weights import load_backbone_weights


def build_backbone(
    name: str,
    out_levels: Level | Sequence[Level] | None = None,
    weights: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool | None = None,
) -> Backbone:
    """Build backbone ``name`` returning ``out_levels`` (names or strides; ``None``: its defaults).

    ``weights`` is a spec for :func:`convsight.backbones.weights.load_backbone_weights` (``"imagenet"``, a
    ``.safetensors``/``.pth`` path, or ``None``/``"random"``); what actually loaded is recorded in
    ``backbone.loaded_weights``.
    """
    backbone = BACKBONES.get(name)(out_levels)
    load_backbone_weights(backbone, weights, allow_download=allow_download)
    return backbone


def backbone_names() -> list[str]:
    return BACKBONES.names()
