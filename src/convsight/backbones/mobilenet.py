"""MobileNetV2 feature levels (Sandler et al., 2018) on torchvision's definition.

torchvision's ``features`` is one flat sequence of 19 blocks; it is cut after the last block of
each resolution: blocks 0-1 (16 channels, stride 2), 2-3 (24, stride 4), 4-6 (32, stride 8),
7-13 (96, stride 16) and 14-18 (stride 32). The last stage keeps the final 1x1 conv, so it gives
1280 channels (not the 320 of block 17) and equals torchvision's ``model.features(x)`` exactly.

Its ImageNet weights ship with the environment (see :mod:`convsight.weights`), which makes this the
default backbone for transfer learning offline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision

from convsight.backbones.base import BACKBONES, Backbone, FeatureInfo, Level

# (first block, one past the last block, channels out) for strides 2, 4, 8, 16, 32
_CUTS = ((0, 2, 16), (2, 4, 24), (4, 7, 32), (7, 14, 96), (14, 19, 1280))


@BACKBONES.register("mobilenet_v2")
def mobilenet_v2(out_levels: Level | Sequence[Level] | None = None) -> Backbone:
    """MobileNetV2: ``stage1..stage5`` with 16, 24, 32, 96, 1280 channels at strides 2..32."""
    model = torchvision.models.mobilenet_v2(weights=None)
    stages = [model.features[a:b] for a, b, _ in _CUTS]
    levels = [FeatureInfo(f"stage{i + 1}", c, 2 ** (i + 1)) for i, (_, _, c) in enumerate(_CUTS)]
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    return Backbone("mobilenet_v2", stages, levels, out_levels, source=model, imagenet_weights=weights)
