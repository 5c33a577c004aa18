import warnings

import pytest
import torch
from torch import nn

from convsight.style.cost import conv_macs, evaluation_flops
from convsight.style.encoder import build_encoder


def _vgg(taps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_encoder("vgg19", "random", "avg", taps)


def test_vgg19_at_224_matches_torchvisions_published_count() -> None:
    # torchvision's model page for vgg19 (pytorch.org/vision/stable/models/generated/torchvision.models.vgg19.html,
    # VGG19_Weights.IMAGENET1K_V1) lists "GFLOPS 19.63" (counted as multiply-adds) for the whole net at 224 px:
    # the 16 convolutions plus the three FC layers (25088x4096, 4096x4096, 4096x1000).
    fc = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    total = conv_macs(_vgg(("relu5_4",)).features, 224, 224) + fc
    assert total / 1e9 == pytest.approx(19.63, abs=0.005)


def test_style_encoder_cost_to_relu5_1_by_hand() -> None:
    # VGG19 configuration E (Simonyan & Zisserman, table 1), 3x3 convs, a 2x2 pool after each block; relu5_1 is
    # reached after conv5_1. MACs = h * w * c_out * c_in * 9 at each conv's own resolution.
    s = 256
    convs = [(s, 3, 64), (s, 64, 64), (s // 2, 64, 128), (s // 2, 128, 128)]
    convs += [(s // 4, 128, 256)] + [(s // 4, 256, 256)] * 3
    convs += [(s // 8, 256, 512)] + [(s // 8, 512, 512)] * 3 + [(s // 16, 512, 512)]
    by_hand = sum(side * side * co * ci * 9 for side, ci, co in convs)
    enc = _vgg(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"))
    assert conv_macs(enc.features, s, s) == by_hand
    assert evaluation_flops(enc, s, s) == 4 * by_hand  # 2 FLOPs per MAC, forward + input-gradient backward
    assert evaluation_flops(enc, s // 2, s // 2) == 4 * by_hand // 4  # a half-size level costs a quarter


def _macs_from_a_real_forward(net: nn.Module, h: int, w: int) -> int:
    """Independent count: output shapes as torch computes them, read with forward hooks."""
    total = 0

    def hook(m: nn.Conv2d, _inputs: object, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.shape[-2] * out.shape[-1] * m.out_channels * (m.in_channels // m.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, h, w))
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("h, w", [(64, 48), (37, 53)])  # odd sides: floor in strided convs and pools
def test_strides_padding_groups_and_pools_follow_torchs_shapes(h, w) -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(8, 16, 1), nn.AvgPool2d(2),
        nn.Sequential(nn.Conv2d(16, 16, (3, 5), padding=(1, 2), dilation=1), nn.Conv2d(16, 4, 3, padding="same")),
    )
    assert conv_macs(net, h, w) == _macs_from_a_real_forward(net, h, w)


def test_mobilenet_v2_features_follow_torchs_shapes() -> None:
    import torchvision

    net = torchvision.models.mobilenet_v2(weights=None).features
    assert conv_macs(net, 96, 128) == _macs_from_a_real_forward(net, 96, 128)
