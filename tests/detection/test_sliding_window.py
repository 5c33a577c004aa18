"""Sliding windows: naive and convolutional forms agree, window labelling, the detector contract."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.sliding_window import (
    PatchNet,
    SlidingWindowConfig,
    conv_scores,
    conv_windows,
    label_windows,
    naive_scores,
    sample_training_crops,
)
from convsight.errors import ConfigError
from convsight.structures import Target

from .conftest import adam_steps, scene_batch

SIZE = (64, 64)


def _model(**overrides):
    from convsight.detection.build import build_detector

    return build_detector("sliding_window", num_classes=3, **overrides)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 2, seed=5, single_object=True, background="plain")
    return images, targets


def test_patchnet_dense_map_shape() -> None:
    net = PatchNet(4, input_size=32)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 4, 1, 1)
    assert net(torch.rand(1, 3, 64, 48)).shape == (1, 4, 9, 5)  # (64-32)/4+1, (48-32)/4+1


def test_conv_windows_geometry() -> None:
    w = conv_windows((64, 64), 32, (1, 1))
    assert w.shape == (81, 4)
    torch.testing.assert_close(w[:2], torch.tensor([[0.0, 0, 32, 32], [4.0, 0, 36, 32]]))
    w = conv_windows((130, 128), 32, (2, 1))  # 64 high, 32 wide; shrunk image 65 x 128
    assert ((w[:, 3] - w[:, 1]) == 64).all() and ((w[:, 2] - w[:, 0]) == 32).all()
    assert w[:, 3].max() <= 130 and w[:, 2].max() == 128
    assert sorted(set(w[:, 1].tolist()))[:2] == [0.0, 8.0]  # vertical stride 4 * ky


@pytest.mark.parametrize("image_hw", [(64, 64), (75, 98)])
def test_naive_and_conv_score_the_same_windows(image_hw: tuple[int, int]) -> None:
    model = _model(image_size=image_hw, window_shapes=((1, 1), (2, 2), (1, 2), (2, 1), (3, 2))).eval()
    g = torch.Generator().manual_seed(1)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # as if trained
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        bn.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
        bn.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    image = torch.rand(3, *image_hw)
    with torch.no_grad():
        wn, zn = naive_scores(model, image, logits=True)
        wc, zc = conv_scores(model, image, logits=True)
        _, pn = naive_scores(model, image)
        _, pc = conv_scores(model, image)
    assert wn.shape[0] >= 90 and zn.shape == (wn.shape[0], 4)
    assert torch.equal(wn, wc)
    assert (zn - zc).abs().max() < 1e-4
    assert (pn - pc).abs().max() < 1e-4
    # The check can fail: scores of the windows one step to the right differ.
    assert (zn[1:] - zc[:-1]).abs().max() > 1e-3


def test_label_windows() -> None:
    windows = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 7], [20, 20, 30, 30], [0, 0, 10, 2]])
    t = Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([2]))
    labels = label_windows(windows, t, num_classes=3, fg_iou=0.5, bg_iou=0.3)
    assert labels.tolist() == [2, 2, 3, 3]
    labels = label_windows(windows, t, num_classes=3, fg_iou=0.8, bg_iou=0.3)
    assert labels.tolist() == [2, -1, 3, 3]  # IoU 0.7: neither fg nor bg
    empty = Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert label_windows(windows, empty, 3, 0.5, 0.3).tolist() == [3, 3, 3, 3]


def test_sample_training_crops_balance() -> None:
    cfg = SlidingWindowConfig(crops_per_image=8, positive_fraction=0.25)
    windows = conv_windows((64, 64), 32, (1, 1))
    t = Target(torch.tensor([[0.0, 0, 32, 32]]), torch.tensor([1]))
    boxes, labels = sample_training_crops(windows, t, 3, cfg)
    assert boxes.shape == (9, 4) and labels.shape == (9,)
    assert torch.equal(boxes[0], t.boxes[0]) and labels[0] == 1
    assert (labels[1:] == 1).sum() == 2 and (labels[1:] == 3).sum() == 6


def test_hard_negatives_are_the_highest_scoring_background_windows() -> None:
    cfg = SlidingWindowConfig(crops_per_image=8, positive_fraction=0.25, hard_negatives=0.5)
    windows = conv_windows((64, 64), 16, (1, 1))  # 13 x 13 windows at stride 4
    t = Target(torch.tensor([[0.0, 0, 16, 16]]), torch.tensor([1]))
    objectness = torch.zeros(len(windows))
    far = torch.tensor([100, 120, 168])  # background windows (far from the gt) the classifier likes
    objectness[far] = torch.tensor([0.9, 0.8, 0.7])
    objectness[0] = 1.0  # the gt's own window: a positive, never a negative
    torch.manual_seed(0)
    boxes, labels = sample_training_crops(windows, t, 3, cfg, objectness)
    negatives = boxes[1:][labels[1:] == 3]
    assert len(negatives) == 6  # 8 crops, 2 positives; 3 of the 6 negatives hard, 3 random
    assert torch.equal(negatives[:3], windows[far])
    assert len({tuple(b) for b in negatives.tolist()}) == 6  # the random ones never repeat a hard one
    _, labels_r = sample_training_crops(windows, t, 3, SlidingWindowConfig(crops_per_image=8), objectness)
    assert (labels_r[1:] == 3).sum() == 6  # hard_negatives=0 (the default): all random, as before


def test_training_with_hard_negatives_reduces_loss(batch: tuple[torch.Tensor, list[Target]]) -> None:
    images, targets = batch
    model = _model(image_size=SIZE, window_shapes=((1, 1), (2, 2), (1, 2), (2, 1)), hard_negatives=0.5)
    history = [h["loss"] for h in adam_steps(model, images, targets, steps=40, lr=3e-3)]
    assert model.training  # the no-grad scoring pass puts the net back in training mode
    assert sum(history[-5:]) / 5 < 0.5 * history[0], history


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        SlidingWindowConfig(mode="dense")
    with pytest.raises(ConfigError):
        SlidingWindowConfig(window_shapes=((1.5, 1),))
    with pytest.raises(ConfigError):
        SlidingWindowConfig(backbone="tiny")
    with pytest.raises(ConfigError):
        SlidingWindowConfig(image_size=(16, 16))
    with pytest.raises(ConfigError):
        SlidingWindowConfig(hard_negatives=1.5)


def test_conv_and_naive_detect_the_same(batch: tuple[torch.Tensor, list[Target]]) -> None:
    images, _ = batch
    conv = _model(image_size=SIZE, mode="conv").eval()
    naive = _model(image_size=SIZE, mode="naive").eval()
    naive.load_state_dict(conv.state_dict())
    keep = type(conv.postprocess)(score_threshold=0.0, iou_threshold=0.3)
    with torch.no_grad():
        a, b = conv(images, postprocess=keep).detections, naive(images, postprocess=keep).detections
    for x, y in zip(a, b, strict=True):
        assert len(x) > 0
        torch.testing.assert_close(x.boxes, y.boxes)
        torch.testing.assert_close(x.scores, y.scores, atol=1e-5, rtol=0)


def test_training_reduces_loss(batch: tuple[torch.Tensor, list[Target]]) -> None:
    images, targets = batch
    model = _model(image_size=SIZE, window_shapes=((1, 1), (2, 2), (1, 2), (2, 1)))
    history = [h["loss"] for h in adam_steps(model, images, targets, steps=40, lr=3e-3)]
    first, final = history[0], sum(history[-5:]) / 5  # crops are resampled every step: average a few
    assert final < 0.2 * first, (first, final)
