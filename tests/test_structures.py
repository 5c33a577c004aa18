from __future__ import annotations

import pytest
import torch

from convsight.structures import Detections, DetectorOutput, Target


def test_detections_shape_checks():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Detections(torch.zeros(3, 5), torch.zeros(3), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="2 boxes but 3"):
        Detections(torch.zeros(2, 4), torch.zeros(3), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="same shape"):
        Detections(torch.zeros(2, 4), torch.zeros(1), torch.zeros(2, dtype=torch.int64))


def test_detections_empty_index_and_len():
    d = Detections(torch.rand(4, 4), torch.tensor([0.1, 0.9, 0.5, 0.2]), torch.tensor([0, 1, 0, 1]))
    top = d[d.scores > 0.3]
    assert len(top) == 2 and top.labels.tolist() == [1, 0]
    e = Detections.empty()
    assert len(e) == 0 and e.boxes.shape == (0, 4) and e.labels.dtype == torch.int64


def test_detector_output_loss_is_sum_and_needs_targets():
    out = DetectorOutput(losses={"cls": torch.tensor(1.5), "box": torch.tensor(0.5)})
    assert out.loss.item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no targets"):
        _ = DetectorOutput().loss


def test_target_checks_shapes():
    t = Target(torch.zeros(2, 4), torch.tensor([0, 1]), image_id=3)
    assert len(t) == 2 and t.image_id == 3
    with pytest.raises(ValueError):
        Target(torch.zeros(2, 4), torch.tensor([0]))
