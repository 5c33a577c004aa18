"""build_backbone: the registry of names, and weights recorded on the built net."""

from __future__ import annotations

import warnings

import pytest

from convsight.backbones import BACKBONES, Backbone, backbone_names, build_backbone
from convsight.errors import ConfigError


def test_all_backbones_registered() -> None:
    assert backbone_names() == sorted(["mobilenet_v2", "resnet18", "resnet50", "tiny", "vgg16", "vgg19"])
    assert "tiny" in BACKBONES


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown backbone 'vgg99'.*mobilenet_v2"):
        build_backbone("vgg99")


def test_random_weights_recorded_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb = build_backbone("tiny", out_levels=[16, 32])
    assert isinstance(bb, Backbone) and bb.arch == "tiny"
    assert bb.loaded_weights is not None
    assert bb.loaded_weights.source == "random" and not bb.loaded_weights.pretrained
