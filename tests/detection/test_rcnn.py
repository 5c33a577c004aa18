"""R-CNN: warping, proposal labelling and sampling, loss, decoding, and the detector contract."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.proposals import ProposalConfig
from convsight.detection.rcnn import (
    RCNNConfig,
    RCNNDetector,
    assign_proposals,
    decode_rcnn,
    rcnn_loss,
    sample_proposals,
    warp_regions,
)
from convsight.errors import ConfigError
from convsight.ops.box_coder import BoxCoder
from convsight.structures import Target

from .conftest import JitteredGt, adam_steps, scene_batch

SIZE = (64, 64)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 2, seed=7, min_objects=1, max_objects=2, min_size=16, background="plain")
    return images, targets


def _model(batch: tuple[torch.Tensor, list[Target]], **overrides) -> RCNNDetector:
    images, targets = batch
    cfg = RCNNConfig(image_size=SIZE, warp_size=32, **overrides)
    return RCNNDetector(3, cfg, proposer=JitteredGt(images, targets, jitter=3.0, max_extra=24.0))


def test_warp_regions_is_crop_and_resize() -> None:
    image = torch.zeros(1, 3, 16, 16)
    image[0, 0, 4:8, 4:12] = 1.0  # a red 4 x 8 block
    crops = warp_regions(image, [torch.tensor([[4.0, 4, 12, 8], [0, 0, 3, 3]])], size=8)
    assert crops.shape == (2, 3, 8, 8)
    # The block, stretched: bilinear sampling only blends the outermost half pixel with the border.
    torch.testing.assert_close(crops[0, 0, 2:-2, 1:-1], torch.ones(4, 6))
    assert crops[0, 0].mean() > 0.75 and crops[0, 1:].abs().max() == 0
    assert crops[1].abs().max() == 0
    padded = warp_regions(image, [torch.tensor([[4.0, 4, 12, 8]])], size=8, context_pad=2.0)
    assert 0 < padded[0, 0].mean() < 1  # context around the block comes in


def test_assign_and_sample() -> None:
    t = Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1]))
    props = torch.tensor([[0.0, 0, 10, 8], [0, 0, 10, 4], [20, 20, 30, 30]])
    labels, matched = assign_proposals(props, t, 3, fg_iou=0.5, bg_iou=0.5)
    assert labels.tolist() == [1, 3, 3] and torch.equal(matched[0], t.boxes[0])
    labels, _ = assign_proposals(props, t, 3, fg_iou=0.5, bg_iou=0.3)
    assert labels.tolist() == [1, -1, 3]  # IoU 0.4: unused with R-CNN's 0.3 negatives
    cfg = RCNNConfig(rois_per_image=4, positive_fraction=0.25)
    many = torch.cat([props, torch.tensor([[40.0, 40, 50, 50]]).repeat(10, 1)])
    rois, labels, _ = sample_proposals(many, t, 3, cfg)
    assert rois.shape == (4, 4) and (labels < 3).sum() == 1 and (labels == 3).sum() == 3
    empty = Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    _, labels, _ = sample_proposals(many, empty, 3, cfg)
    assert (labels == 3).all() and len(labels) == 4


def test_loss_uses_the_gt_class_slot_and_decode() -> None:
    coder = BoxCoder()
    rois = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    matched = torch.tensor([[1.0, 1, 11, 11], [0, 0, 0, 0]])
    labels = torch.tensor([2, 3])  # C = 3: second roi is background
    offsets = torch.zeros(2, 3, 4)
    offsets[0, 2] = coder.encode(matched[:1], rois[:1])[0]  # perfect in the right slot
    offsets[0, 0] = 5.0  # garbage in the wrong slots must not count
    offsets[1] = 7.0  # nor on background
    losses = rcnn_loss(torch.zeros(2, 4), offsets, labels, rois, matched, coder)
    assert losses["box"].item() == pytest.approx(0.0, abs=1e-6)
    offsets[0, 2] = 0.0
    assert rcnn_loss(torch.zeros(2, 4), offsets, labels, rois, matched, coder)["box"].item() > 0.1
    probs, boxes = decode_rcnn(torch.zeros(2, 4), torch.zeros(2, 3, 4), rois, coder)
    assert probs.shape == (2, 3) and boxes.shape == (2, 3, 4)
    torch.testing.assert_close(boxes[1, 0], rois[1])


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        RCNNConfig(fg_iou=0.3, bg_iou=0.5)
    with pytest.raises(ConfigError):
        RCNNConfig(warp_size=40)
    with pytest.raises(ConfigError):
        RCNNConfig(max_proposals=0)


def test_build_detector(tmp_path) -> None:
    from convsight.detection.build import build_detector

    model = build_detector("rcnn", num_classes=3, image_size=SIZE, max_proposals=300, proposal_cache=str(tmp_path))
    assert isinstance(model, RCNNDetector) and model.arch == "rcnn"
    # The cache holds selective search's full list (its own cap), so R-CNN and Fast R-CNN share one
    # folder whatever their max_proposals; each model takes its first max_proposals.
    assert model.proposer.config == ProposalConfig() and model.proposer.folder == tmp_path


def test_training_reduces_loss(batch: tuple[torch.Tensor, list[Target]]) -> None:
    images, targets = batch
    history = [h["loss"] for h in adam_steps(_model(batch, rois_per_image=16), images, targets, steps=25, lr=2e-3)]
    first, final = history[0], sum(history[-5:]) / 5
    assert final < 0.3 * first, (first, final)


def test_real_selective_search_one_image(batch: tuple[torch.Tensor, list[Target]]) -> None:
    from convsight.detection.build import build_detector

    images, targets = batch
    model = build_detector("rcnn", num_classes=3, image_size=SIZE, warp_size=32, max_proposals=50).eval()
    props = model.proposals(images[:1])[0]
    assert 0 < len(props) <= 50
    out = model(images[:1], targets[:1])
    assert len(out.detections) == 1 and torch.isfinite(out.loss)
