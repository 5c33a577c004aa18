"""RoI head: sampling (gt added, IoU bands), loss terms, decoding, and the module's outputs."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.base import PostprocessConfig
from convsight.detection.roi_heads import (
    RoIHead,
    RoIHeadConfig,
    decode_roi_predictions,
    roi_head_loss,
    sample_rois,
)
from convsight.errors import ConfigError
from convsight.ops.box_coder import BoxCoder
from convsight.structures import Target

GT = Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1]))
EMPTY = Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))


def test_sample_rois_bands_and_gt_as_foreground() -> None:
    # IoU with the gt: 0.8 (fg), 0.4 (bg band), 0.05 (too far: unused), 0 (unused)
    props = torch.tensor([[0.0, 0, 10, 8], [0, 0, 10, 4], [0, 0, 10, 0.5], [20, 20, 30, 30]])
    torch.manual_seed(0)
    rois, labels, matched = sample_rois(props, GT, 3, RoIHeadConfig(rois_per_image=16, positive_fraction=0.5))
    assert rois.shape == (3, 4) and labels.shape == (3,) and matched.shape == (3, 4)
    assert labels.tolist() == [1, 1, 3]  # fg first: the gt itself and the 0.8 proposal; then the 0.4 one
    assert any(torch.equal(r, GT.boxes[0]) for r in rois[:2])  # the gt box is a foreground roi
    assert torch.equal(rois[2], props[1])
    assert torch.equal(matched[0], GT.boxes[0]) and matched[2].abs().sum() == 0
    # with bg_iou_low = 0 every non-fg proposal is a background candidate
    _, labels, _ = sample_rois(props, GT, 3, RoIHeadConfig(bg_iou_low=0.0, rois_per_image=16))
    assert (labels == 3).sum() == 3


def test_sample_rois_caps_and_fraction() -> None:
    cfg = RoIHeadConfig(rois_per_image=8, positive_fraction=0.25)
    props = torch.cat([GT.boxes.repeat(10, 1), torch.tensor([[0.0, 0, 10, 4]]).repeat(20, 1)])
    torch.manual_seed(0)
    _, labels, _ = sample_rois(props, GT, 3, cfg)
    assert len(labels) == 8 and (labels < 3).sum() == 2 and (labels == 3).sum() == 6
    _, labels, _ = sample_rois(props, EMPTY, 3, cfg)  # no objects: everything is background
    assert len(labels) == 8 and (labels == 3).all()


def test_loss_uses_the_gt_class_slot() -> None:
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    rois = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    matched = torch.tensor([[1.0, 1, 11, 11], [0, 0, 0, 0]])
    labels = torch.tensor([2, 3])  # C = 3: second roi is background
    deltas = torch.zeros(2, 3, 4)
    deltas[0, 2] = coder.encode(matched[:1], rois[:1])[0]
    deltas[0, 0], deltas[1] = 5.0, 7.0  # wrong slot and background: must not count
    logits = torch.tensor([[0.0, 0, 10, 0], [0, 0, 0, 10]])
    losses = roi_head_loss(logits, deltas, labels, rois, matched, coder)
    assert losses["box"].item() == pytest.approx(0.0, abs=1e-6) and losses["cls"].item() < 1e-3
    deltas[0, 2] = 0.0
    assert roi_head_loss(logits, deltas, labels, rois, matched, coder)["box"].item() > 0.1
    none = torch.zeros(0, 4)
    empty = roi_head_loss(torch.zeros(0, 4, requires_grad=True), torch.zeros(0, 3, 4),
                          torch.zeros(0, dtype=torch.int64), none, none, coder)
    assert empty["cls"].item() == 0.0 and empty["cls"].requires_grad


def test_decode_clips_and_drops_background() -> None:
    rois = torch.tensor([[0.0, 0, 10, 10], [50, 50, 70, 70]])
    deltas = torch.zeros(2, 3, 4)
    deltas[1, 1, 2:] = 5.0  # much wider/taller: must be clipped to the 64 x 64 image
    probs, boxes = decode_roi_predictions(torch.zeros(2, 4), deltas, rois, BoxCoder(), (64, 64))
    assert probs.shape == (2, 3) and boxes.shape == (2, 3, 4)
    torch.testing.assert_close(probs, torch.full((2, 3), 0.25))
    torch.testing.assert_close(boxes[0, 0], rois[0])
    assert boxes[1, 1, 2:].tolist() == [64.0, 64.0]


def test_module_outputs_and_empty_proposals() -> None:
    torch.manual_seed(0)
    head = RoIHead(8, 16, 3, RoIHeadConfig(pool_size=3, hidden=16, rois_per_image=8))
    feature = torch.rand(2, 8, 4, 4)
    props = [torch.tensor([[0.0, 0, 30, 30], [10, 10, 50, 60]]), torch.zeros(0, 4)]
    losses, dets = head(feature, props, [GT, EMPTY], (64, 64), PostprocessConfig(score_threshold=0.0))
    assert set(losses) == {"cls", "box"} and all(torch.isfinite(v) for v in losses.values())
    assert len(dets) == 2 and len(dets[1]) == 0 and 0 < len(dets[0]) <= 6
    assert (dets[0].labels < 3).all()
    losses, dets = head(feature, props, None, (64, 64))
    assert losses == {} and dets == []


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        RoIHeadConfig(bg_iou_low=0.6, fg_iou=0.5)
    with pytest.raises(ConfigError):
        RoIHeadConfig(rois_per_image=0)
    with pytest.raises(ConfigError):
        RoIHeadConfig(box_weights=(1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ConfigError):
        RoIHeadConfig(pooling="avg")


def test_align_pooling_sees_where_a_sub_cell_object_sits() -> None:
    """Two 6 px RoIs 8 px apart: max pooling rounds both to the same whole 16 px cell (same features at
    both positions); RoIAlign samples where it really is (different features), and the head's
    outputs keep their shapes."""
    torch.manual_seed(0)
    feature = torch.rand(1, 4, 4, 4)  # stride 16: a 64 px image
    rois = [torch.tensor([[9.0, 9, 15, 15], [17.0, 17, 23, 23]])]  # both round to cell (1, 1) at 1/16
    pooled = {}
    for pooling in ("max", "align"):
        head = RoIHead(4, 16, 3, RoIHeadConfig(pool_size=2, hidden=8, pooling=pooling))
        captured = []
        head.fc.register_forward_hook(lambda _m, inp, _out, c=captured: c.append(inp[0]))
        logits, deltas = head.predict(feature, rois)
        assert logits.shape == (2, 4) and deltas.shape == (2, 3, 4)
        pooled[pooling] = captured[0]  # (2, 4, 2, 2): what the FC layers see
    assert torch.equal(pooled["max"][0], pooled["max"][1])
    assert not torch.allclose(pooled["align"][0], pooled["align"][1])
