"""The feature contract: level selection, normalisation, frozen BatchNorm, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convsight.backbones import Backbone, FeatureInfo, build_backbone, freeze, num_parameters, unfreeze
from convsight.backbones.base import IMAGENET_MEAN, IMAGENET_STD, select_levels
from convsight.errors import ConfigError

LEVELS = [FeatureInfo("a", 4, 2), FeatureInfo("b", 8, 4), FeatureInfo("c", 16, 8)]


def toy_backbone(out_levels=None) -> Backbone:
    """Three stages of conv(stride 2)-BN-ReLU with hand-known channels and strides."""
    stages, c_in = [], 3
    for lv in LEVELS:
        conv = nn.Conv2d(c_in, lv.channels, 3, stride=2, padding=1)
        stages.append(nn.Sequential(conv, nn.BatchNorm2d(lv.channels), nn.ReLU()))
        c_in = lv.channels
    return Backbone("toy", stages, LEVELS, out_levels)


def test_select_levels_by_name_stride_and_mixed_in_stride_order() -> None:
    assert select_levels(LEVELS, None) == [0, 1, 2]
    assert select_levels(LEVELS, ["c", "a"]) == [0, 2]
    assert select_levels(LEVELS, (8, 4)) == [1, 2]
    assert select_levels(LEVELS, ["a", 8]) == [0, 2]
    assert select_levels(LEVELS, 4) == [1]
    assert select_levels(LEVELS, "c") == [2]


@pytest.mark.parametrize("wanted", [["d"], [16], [], ["a", 2]])
def test_select_levels_rejects_unknown_empty_and_repeated(wanted) -> None:
    with pytest.raises(ConfigError):
        select_levels(LEVELS, wanted)


def test_unknown_level_message_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"b \(stride 4\)"):
        toy_backbone(out_levels=[64])


def test_forward_returns_selected_levels_and_stops_early() -> None:
    bb = toy_backbone(out_levels=["b"])
    assert len(bb.stages) == 2  # the stage after the deepest selected level is not built
    feats = bb(torch.rand(2, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [(2, 8, 8, 8)]
    assert bb.out_channels == 8 and bb.strides == [4]


def test_feature_info_matches_tensors() -> None:
    bb = toy_backbone()
    x = torch.rand(1, 3, 64, 32)
    for info, f in zip(bb.feature_info, bb(x), strict=True):
        assert f.shape[1] == info.channels
        assert (f.shape[2], f.shape[3]) == (64 // info.stride, 32 // info.stride)


def test_normalize_uses_imagenet_statistics() -> None:
    bb = toy_backbone()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(bb.normalize(mean), torch.zeros(1, 3, 2, 2), atol=1e-6)
    one_std_up = mean + torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(bb.normalize(one_std_up), torch.ones(1, 3, 2, 2), atol=1e-6)
    assert "mean" not in bb.state_dict()  # statistics belong to the architecture, not to weights


def test_forward_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        toy_backbone()(torch.rand(1, 1, 8, 8))


def _bns(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_freeze_keeps_bn_in_eval_and_stops_gradients() -> None:
    bb = freeze(build_backbone("tiny"))
    head = nn.Conv2d(bb.out_channels, 1, 1)
    bb.train()
    head.train()
    assert bb.training and all(not bn.training for bn in _bns(bb))
    stats = [bn.running_mean.clone() for bn in _bns(bb)]
    head(bb(torch.rand(2, 3, 64, 64))[-1]).sum().backward()
    assert all(p.grad is None for p in bb.parameters())
    assert head.weight.grad is not None
    assert all(torch.equal(s, bn.running_mean) for s, bn in zip(stats, _bns(bb)))  # no stats drift
    assert num_parameters(bb, trainable_only=True) == 0


def test_freeze_leaves_last_levels_trainable() -> None:
    bb = freeze(build_backbone("tiny"), trainable_levels=2).train()
    for i, stage in enumerate(bb.stages):
        assert all(p.requires_grad == (i >= 3) for p in stage.parameters())
        assert all(bn.training == (i >= 3) for bn in _bns(stage))
    bb(torch.rand(2, 3, 64, 64))[-1].sum().backward()
    assert bb.stages[2][0][0].weight.grad is None
    assert bb.stages[4][0][0].weight.grad is not None
    expected = sum(p.numel() for s in bb.stages[3:] for p in s.parameters())
    assert num_parameters(bb, trainable_only=True) == expected


def test_unfreeze_restores_training() -> None:
    bb = unfreeze(freeze(build_backbone("tiny")).train())
    assert all(bn.training for bn in _bns(bb))
    assert num_parameters(bb, trainable_only=True) == num_parameters(bb)


def test_freeze_rejects_out_of_range() -> None:
    with pytest.raises(ConfigError):
        freeze(build_backbone("tiny"), trainable_levels=6)


def test_num_parameters_hand_counted() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # 3*4+4 + 4*2+2 = 26
    assert num_parameters(net) == 26
    net[0].requires_grad_(False)
    assert num_parameters(net, trainable_only=True) == 10
