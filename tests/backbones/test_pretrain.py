from __future__ import annotations

import pytest
import torch

from convsight.backbones import build_backbone
from convsight.backbones.pretrain import (
    BackboneClassifier,
    FlipRotate,
    PretrainConfig,
    pretrain_backbone,
)
from convsight.errors import ConfigError
from convsight.io.synth_writer import write_crops
from convsight.io.synthetic import SynthConfig
from convsight.training import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets: a second thread mostly spin-waits


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


# The default suite's proof that pretraining learns (README: "Backbone pretraining"). Three shapes +
# background on plain backgrounds, 24 px crops: an easy task that ~340 steps learn, ~15 s on one core.
# Best validation accuracy here (data seed 1, torch seed 0 from conftest): 0.665; data seeds 2, 3, 4:
# 0.679, 0.681, 0.694; four other weight initialisations: 0.688-0.723. The most frequent class is 29%
# of the crops, so 0.60 is twice the chance level, and a pretraining that does not learn (no optimizer
# step, labels not matching the crops: both tried, 0.25 and 0.29) stays near chance.
LEARNS_FLOOR = 0.60


def test_pretraining_learns_above_chance(tmp_path):
    root = tmp_path / "c"
    cfg = SynthConfig(image_size=(96, 96), classes=("ellipse", "rectangle", "triangle"), min_size=10,
                      min_objects=1, background="plain")
    counts = write_crops(root, 300, cfg, seed=1, crop_size=24, negatives_per_image=1)
    r = pretrain_backbone(root, tmp_path / "run", PretrainConfig(epochs=10, batch_size=32, image_size=24, lr=1e-2,
                                                                 progress=False))
    chance = max(counts.values()) / sum(counts.values())
    assert chance < 0.3  # the floor below means "well above chance" only while no class dominates
    assert r.val_accuracy >= LEARNS_FLOOR, f"val accuracy {r.val_accuracy:.3f} < {LEARNS_FLOOR} (chance {chance:.2f})"
    assert r.history[0]["accuracy"] < r.val_accuracy  # it got there by training, not from the start


@pytest.mark.slow
def test_pretraining_learns_shapes(tmp_path):
    """Slow: on ~2000 crops of all six shapes on mixed backgrounds the classifier must reach well above
    chance on held-out crops (background, the most frequent class, is ~35% of them)."""
    root = tmp_path / "c"
    write_crops(root, 400, SynthConfig(image_size=(192, 192), min_objects=1), seed=1, crop_size=40)
    r = pretrain_backbone(root, tmp_path / "run", PretrainConfig(epochs=8, batch_size=32, image_size=40, progress=False))
    assert r.val_accuracy > 0.6
