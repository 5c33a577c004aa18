from __future__ import annotations

import pytest
import torch

from convsight.detection.base import PostprocessConfig
from convsight.detection.build import build_detector
from convsight.errors import ConfigError


def test_postprocess_thresholds_nms_and_topk():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.3, 0.01])
    labels = torch.tensor([0, 0, 1, 1])
    d = PostprocessConfig(score_threshold=0.05, iou_threshold=0.5)(boxes, scores, labels, image_size=(40, 40))
    # the overlapping 0.8 is suppressed, the 0.01 dropped, and the box at (50, 50) clipped to nothing
    # (so removed by min_size): only the best box is left
    assert d.scores.tolist() == pytest.approx([0.9]) and d.labels.tolist() == [0]
    d = PostprocessConfig()(boxes, scores, labels, image_size=(55, 55))
    assert d.scores.tolist() == pytest.approx([0.9, 0.3]) and d.boxes[1].tolist() == [50, 50, 55, 55]
    assert len(PostprocessConfig(topk=1)(boxes, scores, labels)) == 1


@pytest.mark.parametrize("kwargs", [{"score_threshold": 1.0}, {"iou_threshold": 0.0}, {"topk": 0}])
def test_postprocess_config_checks(kwargs):
    with pytest.raises(ConfigError):
        PostprocessConfig(**kwargs)


def test_check_inputs_names_the_mistake():
    model = build_detector("toy", 3)
    with pytest.raises(ValueError, match="expected 64x64"):
        model(torch.rand(1, 3, 32, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        model(torch.rand(2, 3, 64, 64), [None])  # type: ignore[list-item]
    assert model.image_size == (64, 64)
