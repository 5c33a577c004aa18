"""VGG16 / VGG19 feature taps (Simonyan & Zisserman, 2015) on torchvision's definitions.

Levels are the last ReLU of each block, *before* its max-pool, named as in the paper
(``relu4_3`` is the third conv of block 4). Only the four pools before a tap downsample it, so the
strides are 1, 2, 4, 8, 16 for blocks 1..5 — the stride-16 ``relu5_3`` is the map Faster R-CNN
(VGG16) pools its RoIs from. ``pool5`` (stride 32) is offered for heads that want a coarser level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from convsight.backbones.base import BACKBONES, Backbone, FeatureInfo, Level

_CHANNELS = (64, 128, 256, 512, 512)


def _vgg(arch: str, convs_per_block: Sequence[int], out_levels: Level | Sequence[Level] | None) -> Backbone:
    constructor = getattr(torchvision.models, arch)
    # Built on the meta device: the 120M-parameter classifier we drop is never allocated or
    # initialised (that alone takes seconds on a CPU).
    with torch.device("meta"):
        model = constructor(weights=None)
    features = model.features.to_empty(device="cpu")
    for m in features.modules():  # the same initialisation torchvision's VGG.__init__ gives
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)

    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    starts = [0, *pools[:-1]]  # a stage begins with the previous block's pool
    ends = pools  # ... and ends with the block's last ReLU (the tap)
    stages: list[nn.Module] = [features[s:e] for s, e in zip(starts, ends)]
    stages.append(features[pools[-1] : pools[-1] + 1])  # pool5
    levels = [
        FeatureInfo(f"relu{b + 1}_{n}", c, 2**b) for b, (n, c) in enumerate(zip(convs_per_block, _CHANNELS))
    ]
    levels.append(FeatureInfo("pool5", 512, 32))
    if out_levels is None:  # pool5 is an extra, not part of the classic taps
        out_levels = [lv.name for lv in levels[:5]]
    weights = getattr(torchvision.models, f"{arch.upper()}_Weights").IMAGENET1K_V1
    return Backbone(arch, stages, levels, out_levels, source=model, imagenet_weights=weights)


@BACKBONES.register("vgg16")
def vgg16(out_levels: Level | Sequence[Level] | None = None) -> Backbone:
    """VGG16 taps ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3`` (+ optional ``pool5``)."""
    return _vgg("vgg16", (2, 2, 3, 3, 3), out_levels)


@BACKBONES.register("vgg19")
def vgg19(out_levels: Level | Sequence[Level] | None = None) -> Backbone:
    """VGG19 taps ``relu1_2, relu2_2, relu3_4, relu4_4, relu5_4`` (+ optional ``pool5``)."""
    return _vgg("vgg19", (2, 2, 4, 4, 4), out_levels)
