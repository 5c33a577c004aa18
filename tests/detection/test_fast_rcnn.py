"""Fast R-CNN: the detector contract, training on a tiny batch, and real selective search once."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.fast_rcnn import FastRCNNConfig, FastRCNNDetector
from convsight.detection.roi_heads import RoIHeadConfig
from convsight.errors import ConfigError
from convsight.structures import Target

from .conftest import JitteredGt, adam_steps, scene_batch

SIZE = (96, 96)
HEAD = RoIHeadConfig(rois_per_image=32, pool_size=4, hidden=64)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 2, seed=7, min_objects=1, max_objects=2, min_size=16, background="plain")
    return images, targets


def _model(batch: tuple[torch.Tensor, list[Target]], **overrides) -> FastRCNNDetector:
    torch.manual_seed(0)
    cfg = FastRCNNConfig(image_size=SIZE, roi_head=HEAD, **overrides)
    return FastRCNNDetector(3, cfg, proposer=JitteredGt(*batch))


def test_proposals_are_capped_and_clipped(batch) -> None:
    model = _model(batch, max_proposals=10)
    props = model.proposals(batch[0])
    assert len(props) == 2 and all(p.shape[1] == 4 and len(p) <= 10 for p in props)
    assert all((p >= 0).all() and (p <= 96).all() and not p.requires_grad for p in props)


def test_training_reduces_loss(batch) -> None:
    images, targets = batch
    history = [h["loss"] for h in adam_steps(_model(batch), images, targets, steps=30, lr=1e-3)]
    first, final = history[0], sum(history[-5:]) / 5
    assert final < 0.3 * first, (first, final)


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        FastRCNNConfig(max_proposals=0)
    with pytest.raises(ConfigError):
        FastRCNNConfig(image_size=(100, 96))
    with pytest.raises(ConfigError):
        FastRCNNConfig(roi_head=RoIHeadConfig(fg_iou=0.3, bg_iou_low=0.4))
    with pytest.raises(ConfigError):
        FastRCNNDetector(3, FastRCNNConfig(feature_level=12))  # no such stride in the backbone


def test_build_detector() -> None:
    from convsight.detection.build import build_detector

    model = build_detector("fast_rcnn", num_classes=3, image_size=SIZE, max_proposals=50)
    assert isinstance(model, FastRCNNDetector) and model.arch == "fast_rcnn"
    assert model.config.max_proposals == 50 and model.roi_head.stride == 16
    rcnn = build_detector("rcnn", num_classes=3, image_size=SIZE, max_proposals=500)
    assert model.proposer.config == rcnn.proposer.config  # one cache key: R-CNN's boxes serve Fast R-CNN


def test_real_selective_search_one_image(batch) -> None:
    from convsight.detection.build import build_detector

    images, targets = batch
    model = build_detector("fast_rcnn", num_classes=3, image_size=SIZE, max_proposals=50, roi_head=HEAD).eval()
    props = model.proposals(images[:1])[0]
    assert 0 < len(props) <= 50
    out = model(images[:1], targets[:1])
    assert len(out.detections) == 1 and torch.isfinite(out.loss)
