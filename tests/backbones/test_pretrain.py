from __future__ import annotations

import pytest
import torch

from convsight.backbones import build_backbone
from convsight.backbones.pretrain import BackboneClassifier, FlipRotate, PretrainConfig, pretrain_backbone
from convsight.errors import ConfigError
from convsight.io.synth_writer import write_crops
from convsight.io.synthetic import SynthConfig
from convsight.training import load_checkpoint


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("crops") / "c"
    write_crops(root, 24, SynthConfig(image_size=(96, 96), min_size=10, min_objects=1), seed=0, crop_size=24)
    return root


def test_classifier_output_and_eval_mode_loss():
    model = BackboneClassifier(build_backbone("tiny"), 3, label_smoothing=0.1).eval()
    out = model(torch.rand(2, 3, 32, 32), torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and out.losses["cls"].ndim == 0
    assert model(torch.rand(2, 3, 32, 32)).losses == {}


def test_flip_rotate_keeps_pixels_and_labels():
    item = (torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(3, 4, 4), 5)
    image, label = FlipRotate([item])[0]
    assert label == 5 and sorted(image.flatten().tolist()) == sorted(item[0].flatten().tolist())


def test_pretrain_keeps_best_backbone(tmp_path, crops):
    r = pretrain_backbone(crops, tmp_path / "run", PretrainConfig(epochs=2, batch_size=16, image_size=24, progress=False))
    assert r.weights.is_file() and r.epochs == 2 and r.loss_curve.is_file()
    assert r.class_names[-1] == "background"
    fresh = build_backbone("tiny", weights=str(r.weights))
    best = load_checkpoint(tmp_path / "run" / "best.pt").model
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, best[f"backbone.{k}"]), k
    assert r.val_accuracy == max(h["accuracy"] for h in r.history)


def test_config_errors():
    with pytest.raises(ConfigError, match="val_fraction"):
        PretrainConfig(val_fraction=1.0)


@pytest.mark.slow
def test_pretraining_learns_shapes(tmp_path):
    """Slow: on ~2000 crops the classifier must reach well above chance (1/7) on held-out crops."""
    root = tmp_path / "c"
    write_crops(root, 400, SynthConfig(image_size=(192, 192), min_objects=1), seed=1, crop_size=40)
    r = pretrain_backbone(root, tmp_path / "run", PretrainConfig(epochs=8, batch_size=32, image_size=40, progress=False))
    assert r.val_accuracy > 0.6
