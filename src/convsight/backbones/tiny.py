"""``tiny``: our own small CNN for quick CPU runs and tests (about 0.48M parameters).

Five stages, each a stride-2 3x3 conv-BN-ReLU followed by a depthwise-separable 3x3 conv-BN-ReLU
(MobileNet's trick, to see more context per stage at a fraction of a full conv's cost). Channels
16, 32, 64, 128, 256 at strides 2, 4, 8, 16, 32. There are no pretrained weights for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from convsight.backbones.base import BACKBONES, Backbone, FeatureInfo, Level

CHANNELS = (16, 32, 64, 128, 256)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            down=_conv_bn_relu(c_in, c_out, 3, stride=2),  # (B, c_in, H, W) -> (B, c_out, H/2, W/2)
            depthwise=_conv_bn_relu(c_out, c_out, 3, groups=c_out),
            pointwise=_conv_bn_relu(c_out, c_out, 1),
        )
    )


@BACKBONES.register("tiny")
def tiny(out_levels: Level | Sequence[Level] | None = None) -> Backbone:
    """``stage1..stage5`` with 16, 32, 64, 128, 256 channels at strides 2..32."""
    ins = (3, *CHANNELS[:-1])
    stages = [_stage(c_in, c_out) for c_in, c_out in zip(ins, CHANNELS)]
    for m in nn.ModuleList(stages).modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    levels = [FeatureInfo(f"stage{i + 1}", c, 2 ** (i + 1)) for i, c in enumerate(CHANNELS)]
    # ImageNet statistics, like the other nets, so a [0, 1] image means the same input everywhere.
    return Backbone("tiny", stages, levels, out_levels)
