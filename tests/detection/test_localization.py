"""Single-object localization: target encoding, loss, decoding, metrics and the detector contract."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.localization import (
    LocalizationConfig,
    decode_localization,
    encode_localization_targets,
    localization_loss,
    localization_metrics,
    pick_object,
)
from convsight.errors import ConfigError
from convsight.structures import Detections, Target

from .conftest import adam_steps, make_target, scene_batch

SIZE = (64, 64)


_target = make_target


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 4, seed=3, single_object=True, background="plain")
    return images, targets


def test_pick_object_largest_and_first() -> None:
    t = _target([[0, 0, 4, 4], [0, 0, 10, 10]], [2, 1])
    assert pick_object(t, "largest") == 1
    assert pick_object(t, "first") == 0
    assert pick_object(_target([], []), "largest") is None


def test_encode_targets_shapes_and_values() -> None:
    targets = [_target([[0, 0, 32, 16]], [1]), _target([], [])]
    labels, boxes, has = encode_localization_targets(targets, num_classes=3, image_size=(64, 64))
    assert labels.tolist() == [1, 3]  # empty image -> "no object" = index C
    assert boxes.shape == (2, 4)
    torch.testing.assert_close(boxes[0], torch.tensor([0.25, 0.125, 0.5, 0.25]))
    assert has.tolist() == [True, False]


def test_loss_box_term_only_for_objects() -> None:
    logits = torch.zeros(2, 4)
    labels = torch.tensor([0, 3])
    pred = torch.full((2, 4), 0.5)
    tgt = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    losses = localization_loss(logits, pred, labels, tgt, torch.tensor([True, False]), box_weight=2.0)
    assert losses["box"].item() == 0.0  # the empty image's wildly different "box" is ignored
    losses = localization_loss(logits, pred, labels, tgt, torch.tensor([True, True]), box_weight=2.0)
    torch.testing.assert_close(losses["box"], torch.tensor(2.0 * 4 * 0.25 / 2))
    torch.testing.assert_close(losses["cls"], torch.log(torch.tensor(4.0)))


def test_decode_no_object_and_box() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])  # C = 2; second image: "no object" wins
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]])
    label, score, xyxy, is_obj = decode_localization(logits, boxes, (64, 128))
    assert label[0] == 0 and is_obj.tolist() == [True, False]
    torch.testing.assert_close(xyxy[0], torch.tensor([32.0, 24.0, 96.0, 40.0]))
    assert 0 < score[1] < 0.5


def test_metrics() -> None:
    targets = [_target([[0, 0, 10, 10]], [1]), _target([[0, 0, 10, 10]], [0]), _target([], [])]
    preds = [
        Detections(torch.tensor([[0.0, 0, 10, 5]]), torch.tensor([0.9]), torch.tensor([1])),  # right, IoU .5
        Detections.empty(),  # missed: wrong, IoU 0
        Detections.empty(),  # correctly nothing
    ]
    m = localization_metrics(preds, targets)
    assert m.accuracy == pytest.approx(2 / 3)
    assert m.mean_iou == pytest.approx(0.25)
    acc, miou = m
    assert acc == m.accuracy


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        LocalizationConfig(box_weight=-1)
    with pytest.raises(ConfigError):
        LocalizationConfig(target_object="biggest")


def test_one_box_at_most_per_image(batch: tuple[torch.Tensor, list[Target]]) -> None:
    from convsight.detection.build import build_detector

    images, _ = batch
    model = build_detector("localization", num_classes=3, image_size=SIZE).eval()
    dets = model(images, postprocess=model.postprocess.with_thresholds(score=0.0)).detections
    assert [len(d) <= 1 for d in dets] == [True] * len(images)


def test_training_reduces_loss(batch: tuple[torch.Tensor, list[Target]]) -> None:
    from convsight.detection.build import build_detector

    images, targets = batch
    model = build_detector("localization", num_classes=3, image_size=SIZE)
    history = [h["loss"] for h in adam_steps(model, images, targets, steps=40, lr=2e-3)]
    # Train-mode losses: with batch 4 and 40 steps BatchNorm's running statistics are not settled
    # yet, so an eval-mode loss would measure BatchNorm, not the fit.
    first, final = history[0], sum(history[-3:]) / 3
    assert final < 0.1 * first, (first, final)


@pytest.mark.parametrize("pool", ["flatten", "average", "split"])
def test_each_pool_gives_logits_and_boxes_and_learns(batch: tuple[torch.Tensor, list[Target]], pool: str) -> None:
    from convsight.detection.build import build_detector

    images, targets = batch
    model = build_detector("localization", num_classes=3, image_size=SIZE, pool=pool)
    logits, boxes = model.predict(images)
    assert logits.shape == (4, 4) and boxes.shape == (4, 4) and bool(((boxes >= 0) & (boxes <= 1)).all())
    history = [h["loss"] for h in adam_steps(model, images, targets, steps=15, lr=2e-3)]
    assert sum(history[-3:]) / 3 < history[0]


def test_flatten_needs_whole_stride_32_cells() -> None:
    with pytest.raises(ConfigError, match="32"):
        LocalizationConfig(image_size=(80, 80), pool="flatten")
    LocalizationConfig(image_size=(80, 80), pool="average")  # any size: averaged away
    with pytest.raises(ConfigError, match="pool"):
        LocalizationConfig(pool="max")
