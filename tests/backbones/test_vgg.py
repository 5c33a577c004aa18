"""VGG taps: paper names, strides 1..16 (+ pool5), and the same maps as torchvision's layers."""

from __future__ import annotations

import pytest
import torch
import torchvision

from convsight.backbones import build_backbone

# Index in torchvision's ``features`` of each block's last ReLU (before its max-pool), read off the
# published layer lists: vgg16 is conv-conv | conv-conv | 3 | 3 | 3, vgg19 is 2 | 2 | 4 | 4 | 4.
TAPS = {
    "vgg16": {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29},
    "vgg19": {"relu1_2": 3, "relu2_2": 8, "relu3_4": 17, "relu4_4": 26, "relu5_4": 35},
}


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_vgg_taps_match_torchvision_layers(arch: str) -> None:
    bb = build_backbone(arch).eval()
    assert [f.name for f in bb.feature_info] == list(TAPS[arch])
    expected = [(64, 1), (128, 2), (256, 4), (512, 8), (512, 16)]
    assert [(f.channels, f.stride) for f in bb.feature_info] == expected

    with torch.device("meta"):
        ref = getattr(torchvision.models, arch)(weights=None)
    features = ref.features.to_empty(device="cpu")
    ours = bb.state_dict()
    features.load_state_dict({bb.source_keys[k].removeprefix("features."): v for k, v in ours.items()})

    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        feats = bb(x)
        h = bb.normalize(x)
        expected = {}
        for i, layer in enumerate(features):
            h = layer(h.clone())  # clone: torchvision's ReLUs are in place
            expected[i] = h
    for f, info in zip(feats, bb.feature_info, strict=True):
        assert f.shape == (1, info.channels, 32 // info.stride, 32 // info.stride)
        torch.testing.assert_close(f, expected[TAPS[arch][info.name]])


def test_vgg_pool5_and_truncation() -> None:
    bb = build_backbone("vgg16", out_levels=["relu4_3", "pool5"])
    assert bb.strides == [8, 32]
    assert [tuple(f.shape) for f in bb(torch.rand(1, 3, 64, 64))] == [(1, 512, 8, 8), (1, 512, 2, 2)]
    shallow = build_backbone("vgg19", out_levels="relu2_2")
    assert len(shallow.stages) == 2 and len(shallow.state_dict()) == 8  # 4 convs x (weight, bias)


def test_vgg_random_init_follows_torchvision() -> None:
    # torchvision's VGG: kaiming-normal (fan_out, relu) convs and zero biases
    conv = build_backbone("vgg16").stages[3][1]
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0
