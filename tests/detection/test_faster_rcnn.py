"""Faster R-CNN: RPN + RoI head on shared features; the detector contract and joint training."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.faster_rcnn import FasterRCNNConfig, FasterRCNNDetector
from convsight.detection.roi_heads import RoIHeadConfig
from convsight.detection.rpn import RPNConfig
from convsight.errors import ConfigError
from convsight.structures import Target

from .conftest import adam_steps, scene_batch

SIZE = (96, 96)
SMALL = dict(
    image_size=SIZE,
    rpn=RPNConfig(anchor_sizes=(16.0, 32.0, 64.0), batch_size_per_image=64, pre_nms_topk_train=200,
                  post_nms_topk_train=64, pre_nms_topk_test=100, post_nms_topk_test=32),
    roi_head=RoIHeadConfig(rois_per_image=32, pool_size=4, hidden=64),
)
LOSSES = {"rpn_obj", "rpn_box", "cls", "box"}


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 2, seed=7, min_objects=1, max_objects=2, min_size=16, background="plain")
    return images, targets


def _model() -> FasterRCNNDetector:
    torch.manual_seed(0)
    return FasterRCNNDetector(3, FasterRCNNConfig(**SMALL))


def test_defaults_are_cpu_sized() -> None:
    cfg = FasterRCNNConfig()
    assert cfg.image_size == (256, 256) and cfg.backbone == "tiny" and cfg.feature_level == 16
    model = FasterRCNNDetector(3, cfg)
    assert model.rpn.stride == 16 and model.roi_head.stride == 16
    assert model.rpn.num_anchors_per_location == len(cfg.rpn.anchor_sizes) * len(cfg.rpn.aspect_ratios)


def test_proposals_are_detached_but_rpn_learns(batch) -> None:
    images, targets = batch
    model = _model().train()
    feature = model.backbone(images)[0]
    proposals, _ = model.rpn(feature, SIZE, targets)
    assert all(not p.requires_grad and len(p) <= 64 for p in proposals)
    out = model(images, targets)
    out.loss.backward()
    assert model.rpn.objectness.weight.grad.abs().sum() > 0 and model.roi_head.cls.weight.grad.abs().sum() > 0


def test_training_reduces_loss(batch) -> None:
    images, targets = batch
    history = adam_steps(_model(), images, targets, steps=30, lr=1e-3)
    total = [h["loss"] for h in history]
    first, final = total[0], sum(total[-5:]) / 5
    assert final < 0.4 * first, (first, final)
    assert history[-1]["rpn_obj"] < 0.2 * history[0]["rpn_obj"]  # the RPN itself learns objectness


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        FasterRCNNConfig(image_size=(90, 96))
    with pytest.raises(ConfigError):
        FasterRCNNConfig(rpn=RPNConfig(nms_iou=0.0))
    with pytest.raises(ConfigError):
        FasterRCNNConfig(rpn=RoIHeadConfig())  # type: ignore[arg-type]


def test_build_detector() -> None:
    from convsight.detection.build import build_detector

    model = build_detector("faster_rcnn", num_classes=3, image_size=SIZE)
    assert isinstance(model, FasterRCNNDetector) and model.arch == "faster_rcnn" and model.num_classes == 3
