"""Backbones with one feature contract: images in [0, 1] -> feature maps with known strides."""

from convsight.backbones.base import (
    BACKBONES,
    Backbone,
    FeatureInfo,
    freeze,
    num_parameters,
    select_levels,
    unfreeze,
)
from convsight.backbones.build import backbone_names, build_backbone

__all__ = [
    "BACKBONES",
    "Backbone",
    "FeatureInfo",
    "backbone_names",
    "build_backbone",
    "freeze",
    "num_parameters",
    "select_levels",
    "unfreeze",
]
