"""ResNet-18 / ResNet-50 feature levels (He et al., 2016) on torchvision's definitions.

The stem (7x7 stride-2 conv, max-pool) already brings the input to stride 4, so it runs as the
first part of the ``layer1`` stage; ``layer1..layer4`` then sit at strides 4, 8, 16, 32. The
``fc`` classifier is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torchvision
from torch import nn

from convsight.backbones.base import BACKBONES, Backbone, FeatureInfo, Level


def _resnet(arch: str, channels: Sequence[int], out_levels: Level | Sequence[Level] | None) -> Backbone:
    model = getattr(torchvision.models, arch)(weights=None)
    stem = OrderedDict(conv1=model.conv1, bn1=model.bn1, relu=model.relu, maxpool=model.maxpool)
    stem_and_layer1 = nn.Sequential(OrderedDict(**stem, layer1=model.layer1))
    stages = [stem_and_layer1, model.layer2, model.layer3, model.layer4]
    levels = [FeatureInfo(f"layer{i + 1}", c, 4 * 2**i) for i, c in enumerate(channels)]
    weights = getattr(torchvision.models, f"ResNet{arch[len('resnet'):]}_Weights").IMAGENET1K_V1
    return Backbone(arch, stages, levels, out_levels, source=model, imagenet_weights=weights)


@BACKBONES.register("resnet18")
def resnet18(out_levels: Level | Sequence[Level] | None = None) -> Backbone:
    """ResNet-18: ``layer1..layer4`` with 64, 128, 256, 512 channels at strides 4, 8, 16, 32."""
    return _resnet("resnet18", (64, 128, 256, 512), out_levels)


@BACKBONES.register("resnet50")
def resnet50(out_levels: Level | Sequence[Level] | None = None) -> Backbone:
    """ResNet-50: ``layer1..layer4`` with 256, 512, 1024, 2048 channels at strides 4, 8, 16, 32."""
    return _resnet("resnet50", (256, 512, 1024, 2048), out_levels)
