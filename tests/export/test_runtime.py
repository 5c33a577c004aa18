"""The post-step after a detector graph is the eager detector's PostprocessConfig, per image."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.base import PostprocessConfig
from convsight.export.runtime import detections_max_diff, postprocess_onnx_outputs


def _raw(b: int, n: int, c: int, class_specific: bool) -> tuple[torch.Tensor, torch.Tensor]:
    xy = torch.rand(b, n, 2) * 60
    boxes = torch.cat([xy, xy + 5 + torch.rand(b, n, 2) * 30], -1)  # (B, N, 4), some beyond 64 px
    if class_specific:
        boxes = boxes[:, :, None] + torch.rand(b, n, c, 4)  # (B, N, C, 4)
    return boxes, torch.rand(b, n, c)


@pytest.mark.parametrize("class_specific", [False, True])
def test_post_step_equals_the_config_applied_per_image(class_specific):
    cfg = PostprocessConfig(score_threshold=0.3, iou_threshold=0.4, topk=7)
    boxes, scores = _raw(2, 40, 3, class_specific)
    got = postprocess_onnx_outputs(boxes.numpy(), scores.numpy(), cfg, (64, 64))
    assert len(got) == 2
    for i in range(2):
        want = cfg(boxes[i], scores[i], image_size=(64, 64))
        assert 0 < len(want) <= 7
        assert detections_max_diff([got[i]], [want]) == 0.0
        assert float(got[i].boxes.max()) <= 64.0  # clipped to the image


def test_post_step_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="expected scores"):
        postprocess_onnx_outputs(torch.zeros(1, 5, 4), torch.zeros(1, 6, 2), PostprocessConfig(), (32, 32))


def test_max_diff_is_inf_when_detections_disagree():
    cfg = PostprocessConfig(score_threshold=0.1)
    boxes, scores = _raw(1, 20, 2, False)
    a = postprocess_onnx_outputs(boxes, scores, cfg, (64, 64))
    b = postprocess_onnx_outputs(boxes, scores * 0.5, PostprocessConfig(score_threshold=0.3), (64, 64))
    assert detections_max_diff(a, a) == 0.0
    assert detections_max_diff(a, b) == float("inf")
