"""SSD: default boxes, matching, hard-negative mining, loss, decoding and the detector contract."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.ssd import (
    SSDConfig,
    SSDDetector,
    decode_ssd,
    encode_ssd_targets,
    hard_negative_mining,
    match_default_boxes,
    ssd_loss,
)
from convsight.errors import ConfigError
from convsight.ops.anchors import grid_anchors, ssd_default_box_config
from convsight.ops.box_coder import BoxCoder
from convsight.ops.boxes import box_iou
from convsight.structures import Target

from .conftest import adam_steps, make_target, scene_batch

SIZE = (64, 64)
SMALL = dict(image_size=SIZE, extra_layers=1)  # maps 8x8, 4x4, 2x2, 1x1


_target = make_target


def _defaults() -> torch.Tensor:
    cfg = ssd_default_box_config(3, 0.1, 0.9, image_size=64)
    return grid_anchors([(8, 8), (4, 4), (2, 2)], [8, 16, 32], cfg)  # (6 * 84, 4)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 4, seed=5, min_objects=1, max_objects=2, min_size=12, background="plain")
    return images, targets


# ---- matching -----------------------------------------------------------------------------------


def test_every_gt_gets_a_positive_even_tiny_and_competing() -> None:
    defaults = _defaults()
    # Two overlapping 2-px boxes share one best default box (plain low-quality matching would leave
    # one of them without any); one big box matches many; a 3-px box sits in the corner.
    gt = torch.tensor([[27.0, 27, 29, 29], [28.0, 27, 30, 29], [5.0, 5, 60, 60], [0.0, 0, 3, 3]])
    matches = match_default_boxes(gt, defaults, 0.5)
    assert matches.shape == (defaults.shape[0],) and matches.dtype == torch.int64
    for g in range(4):
        assert (matches == g).sum() >= 1, f"gt {g} has no default box"
    iou = box_iou(gt, defaults)
    assert (iou[0] < 0.5).all()  # so gt 0's box comes from the forced best match, not the threshold
    # Every box with IoU >= 0.5 to some gt is positive, matched to its best gt.
    strong = iou.max(dim=0).values >= 0.5
    assert (matches[strong] >= 0).all() and strong.sum() > 1
    assert (matches[strong] == iou.argmax(dim=0)[strong]).all()
    # Boxes far below the threshold that nobody needs stay background.
    assert (matches == -1).sum() > 0.9 * defaults.shape[0]


def test_match_empty_gt_is_all_background() -> None:
    defaults = _defaults()
    assert (match_default_boxes(torch.zeros(0, 4), defaults, 0.5) == -1).all()


def test_encode_targets_roundtrip_and_labels() -> None:
    defaults, coder = _defaults(), BoxCoder.from_variances((0.1, 0.1, 0.2, 0.2))
    targets = [_target([[4, 8, 40, 30], [30, 30, 60, 62]], [2, 0]), _target([], [])]
    labels, box_t = encode_ssd_targets(targets, defaults, coder, 0.5)
    assert labels.shape == (2, defaults.shape[0]) and box_t.shape == (2, defaults.shape[0], 4)
    assert set(labels[0].unique().tolist()) == {0, 1, 3}  # classes shifted by one, 0 = background
    assert (labels[1] == 0).all() and (box_t[1] == 0).all()
    pos = labels[0] > 0
    decoded = coder.decode(box_t[0, pos], defaults[pos])
    expected = targets[0].boxes[torch.where(labels[0, pos] == 3, 0, 1)]
    torch.testing.assert_close(decoded, expected, atol=1e-3, rtol=1e-4)


# ---- hard negatives and loss --------------------------------------------------------------------


def test_hard_negative_mining_counts_and_hardest() -> None:
    torch.manual_seed(0)
    loss = torch.rand(3, 50)
    pos = torch.zeros(3, 50, dtype=torch.bool)
    pos[0, :4] = True  # 4 positives -> 12 negatives
    pos[1, 45:] = True  # 5 positives -> 15 negatives
    pos[2, :40] = True  # 40 positives -> 120 wanted, only 10 negatives exist
    mask = hard_negative_mining(loss, pos, 3.0)
    assert mask.sum(dim=1).tolist() == [12, 15, 10]
    assert not (mask & pos).any()
    for i in range(3):
        neg = ~pos[i]
        chosen, rest = loss[i][mask[i]], loss[i][neg & ~mask[i]]
        if rest.numel():
            assert chosen.min() > rest.max()  # the hardest negatives, not any negatives
    # 1-D input, no positives -> no negatives.
    assert hard_negative_mining(torch.rand(10), torch.zeros(10, dtype=torch.bool)).sum() == 0


def test_ssd_loss_values() -> None:
    a, k = 8, 4  # 8 default boxes, 3 classes + background
    logits = torch.zeros(1, a, k)
    labels = torch.zeros(1, a, dtype=torch.int64)
    labels[0, 0] = 2
    logits[0, 1:, 0] = torch.linspace(-1, 1, a - 1)  # higher bg logit -> lower bg loss
    deltas = torch.zeros(1, a, 4)
    targets = torch.zeros(1, a, 4)
    targets[0, 0] = torch.tensor([0.5, 0.0, 2.0, 0.0])
    losses = ssd_loss(logits, deltas, labels, targets, neg_pos_ratio=3.0, box_weight=2.0)
    ce = torch.nn.functional.cross_entropy(logits[0], labels[0], reduction="none")
    expected_cls = ce[0] + ce[1:4].sum()  # the positive + the 3 negatives with the lowest bg logit
    torch.testing.assert_close(losses["cls"], expected_cls)
    torch.testing.assert_close(losses["box"], torch.tensor(2.0 * (0.5 * 0.25 + 1.5)))
    # No positives at all: finite zero loss, still differentiable.
    logits.requires_grad_(True)
    empty = ssd_loss(logits, deltas, torch.zeros(1, a, dtype=torch.int64), targets)
    assert empty["cls"].item() == 0.0 and empty["box"].item() == 0.0
    (empty["cls"] + empty["box"]).backward()


def test_decode_shapes_and_identity() -> None:
    defaults, coder = _defaults(), BoxCoder.from_variances()
    logits = torch.randn(defaults.shape[0], 4)
    boxes, scores = decode_ssd(logits, torch.zeros(defaults.shape[0], 4), defaults, coder)
    torch.testing.assert_close(boxes, defaults)  # zero offsets give the default boxes back
    assert scores.shape == (defaults.shape[0], 3)
    torch.testing.assert_close(scores, logits.softmax(-1)[:, 1:])  # background column dropped


# ---- config, build and the detector contract ----------------------------------------------------


def test_bad_config() -> None:
    SSDConfig()  # defaults are valid
    for bad in (dict(iou_threshold=0.0), dict(neg_pos_ratio=-1), dict(image_size=(100, 100)),
                dict(extra_layers=-1), dict(variances=(0.1, 0.1, 0.2)), dict(s_min=0.5, s_max=0.2),
                dict(aspect_ratios=((1.0, 2.0),) * 2), dict(levels=())):
        with pytest.raises(ConfigError):
            SSDConfig(**bad)


def test_number_of_default_boxes() -> None:
    from convsight.detection.build import build_detector

    ratios = ((1.0,), (1.0, 2.0, 0.5), (1.0, 2.0, 0.5), (1.0, 2.0, 3.0, 0.5, 1 / 3))
    model = build_detector("ssd", num_classes=3, aspect_ratios=ratios, **SMALL)
    assert isinstance(model, SSDDetector) and model.arch == "ssd"
    cls, box, defaults = model.predict(torch.rand(2, 3, *SIZE))
    sizes, ks = [8, 4, 2, 1], [len(r) + 1 for r in ratios]  # + the extra square box
    assert model.box_counts == ks
    n = sum(s * s * k for s, k in zip(sizes, ks))
    assert defaults.shape == (n, 4) and cls.shape == (2, n, 4) and box.shape == (2, n, 4)


def test_empty_images_and_a_batch_of_one(batch: tuple[torch.Tensor, list[Target]]) -> None:
    """No positives: both terms are exactly zero (N clamps at 1, no negatives are mined without
    positives); a batch of one still runs its 1x1 extra map."""
    from convsight.detection.build import build_detector

    torch.manual_seed(0)
    images, targets = batch
    model = build_detector("ssd", num_classes=3, **SMALL).eval()
    out = model(images, [_target([], []) for _ in range(4)])
    assert out.losses["cls"].item() == 0.0 and out.losses["box"].item() == 0.0
    out = model.train()(images[:1], targets[:1])
    assert set(out.losses) == {"cls", "box"} and out.loss > 0


def test_training_reduces_loss(batch: tuple[torch.Tensor, list[Target]]) -> None:
    from convsight.detection.build import build_detector

    torch.manual_seed(0)
    images, targets = batch
    model = build_detector("ssd", num_classes=3, **SMALL)
    losses = [h["loss"] for h in adam_steps(model, images, targets, steps=20, lr=3e-3)]
    assert losses[-1] < 0.2 * losses[0], losses  # observed: 12.5 -> 0.27 after 20 steps
