"""ResNet levels: strides 4..32 and the same maps as torchvision's layer1..layer4."""

from __future__ import annotations

import pytest
import torch
import torchvision

from convsight.backbones import build_backbone


@pytest.mark.parametrize(
    ("arch", "channels"), [("resnet18", [64, 128, 256, 512]), ("resnet50", [256, 512, 1024, 2048])]
)
def test_resnet_levels_match_torchvision(arch: str, channels: list[int]) -> None:
    bb = build_backbone(arch).eval()
    assert [f.name for f in bb.feature_info] == ["layer1", "layer2", "layer3", "layer4"]
    assert [(f.channels, f.stride) for f in bb.feature_info] == list(zip(channels, [4, 8, 16, 32]))

    ref = getattr(torchvision.models, arch)(weights=None).eval()
    missing, unexpected = ref.load_state_dict(
        {bb.source_keys[k]: v for k, v in bb.state_dict().items()}, strict=False
    )
    assert set(missing) == {"fc.weight", "fc.bias"} and not unexpected

    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        feats = bb(x)
        h = ref.maxpool(ref.relu(ref.bn1(ref.conv1(bb.normalize(x)))))
        for f, info, layer in zip(feats, bb.feature_info, [ref.layer1, ref.layer2, ref.layer3, ref.layer4]):
            h = layer(h)
            assert f.shape == (1, info.channels, 64 // info.stride, 96 // info.stride)
            torch.testing.assert_close(f, h)


def test_resnet_detector_levels() -> None:
    bb = build_backbone("resnet18", out_levels=(8, 16, 32))
    assert [f.name for f in bb.feature_info] == ["layer2", "layer3", "layer4"]
    assert bb.out_channels == 512
    assert [f.shape[-1] for f in bb(torch.rand(1, 3, 64, 64))] == [8, 4, 2]
