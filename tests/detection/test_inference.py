"""Inference optimisation (Conv+BN folding, channels-last) keeps every detector's outputs; one
loader (load_for_inference) for files, shipped architectures and the default."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convsight.detection.build import build_detector
from convsight.detection.defaults import DEFAULT_ARCH
from convsight.detection.files import shipped_detector
from convsight.detection.inference import (
    fuse_conv_bn_,
    load_for_inference,
    optimize_for_inference,
)
from convsight.detection.serialize import load_detector, save_detector
from convsight.errors import ConfigError, WeightsError
from convsight.io.synthetic import SynthConfig, render_scene


def _randomised_bn(seq: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine terms, so a wrong fold cannot pass by accident."""
    g = torch.Generator().manual_seed(0)
    for m in seq.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return seq.eval()


def test_fold_is_exact_and_counts_the_pairs() -> None:
    seq = _randomised_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                       nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8),
                                       nn.BatchNorm2d(8)))  # a BN after a BN is not a conv's: left alone
    x = torch.randn(2, 3, 16, 16)
    want = seq(x)
    assert fuse_conv_bn_(seq) == 2
    assert isinstance(seq[1], nn.Identity) and isinstance(seq[4], nn.Identity) and isinstance(seq[5], nn.BatchNorm2d)
    torch.testing.assert_close(seq(x), want, atol=1e-5, rtol=1e-5)


def test_fold_needs_eval_mode() -> None:
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn_(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train())


@pytest.fixture(scope="module")
def scene() -> torch.Tensor:
    """A synthetic 256 px scene with objects, ``(1, 3, 256, 256)`` in [0, 1]."""
    for i in range(20):
        s = render_scene(SynthConfig(image_size=(256, 256)), seed=777, index=i)
        if len(s.boxes) >= 3:
            return torch.from_numpy(s.image).permute(2, 0, 1)[None].float() / 255
    raise AssertionError("no scene with objects")


@pytest.mark.parametrize("arch", ["yolo", "ssd", "faster_rcnn"])
@torch.no_grad()
def test_shipped_detectors_give_the_same_detections(arch: str, scene: torch.Tensor) -> None:
    model, _ = load_detector(shipped_detector(arch))  # type: ignore[arg-type]
    fast, _ = load_detector(shipped_detector(arch))  # type: ignore[arg-type]
    optimize_for_inference(fast)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    want, got = model(scene).detections[0], fast(scene).detections[0]
    assert len(want) >= 2 and len(got) == len(want)
    assert got.labels.tolist() == want.labels.tolist()
    torch.testing.assert_close(got.boxes, want.boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(got.scores, want.scores, atol=1e-4, rtol=0)


def test_an_optimised_detector_refuses_training_and_saving(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = optimize_for_inference(build_detector("yolo", 2, image_size=(64, 64), scales=(16,), head_channels=8))
    optimize_for_inference(model)  # twice is harmless
    with pytest.raises(ConfigError, match="cannot be trained"):
        model.train()
    with pytest.raises(ValueError, match="cannot be saved"):
        save_detector(model, tmp_path / "d.safetensors", ["a", "b"])
    assert not (tmp_path / "d.safetensors").exists()


def test_load_for_inference_takes_a_file_an_arch_an_alias_or_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, names, path = load_for_inference("faster-rcnn", "cpu")
    assert model.arch == "faster_rcnn" and path == shipped_detector("faster_rcnn") and model.inference_only
    assert not model.training and next(model.parameters()).device.type == "cpu"
    model, _, path = load_for_inference(None, "cpu")
    assert model.arch == DEFAULT_ARCH and path == shipped_detector(DEFAULT_ARCH)
    raw, _, _ = load_for_inference(str(shipped_detector("yolo")), "cpu", optimize=False)
    assert raw.arch == "yolo" and not raw.inference_only and any(isinstance(m, nn.BatchNorm2d) for m in raw.modules())
    mine = save_detector(build_detector("toy", 2, image_size=(32, 32)), tmp_path / "toy.safetensors", ["a", "b"])
    model, names, path = load_for_inference(mine, "cpu")
    assert (model.arch, names, path) == ("toy", ("a", "b"), mine)
    with pytest.raises(WeightsError, match="holds a 'toy' detector, not 'ssd'"):
        load_for_inference(mine, "cpu", arch="ssd")
    shipped = "fast_rcnn, faster_rcnn, localization, rcnn, sliding_window, ssd, yolo"  # every lineage method
    with pytest.raises(ConfigError, match=f"no shipped weights for 'toy'.*shipped: {shipped}"):
        load_for_inference("toy", "cpu")  # registered (by the tests), nothing ships for it
    with pytest.raises(ConfigError, match="no shipped weights for 'nope'"):  # a name, not a missing file
        load_for_inference("nope", "cpu")
    with pytest.raises(WeightsError):
        load_for_inference(tmp_path / "missing.safetensors", "cpu")
