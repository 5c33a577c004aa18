from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convsight.detection.files import shipped_detector
from convsight.detection.outputs import detections_doc, write_predictions
from convsight.errors import ConfigError
from convsight.io.coco import read_coco_results, read_coco_with_ids
from convsight.structures import Detections


def _dets() -> list[Detections]:
    return [Detections(torch.tensor([[1.0, 2.0, 11.0, 22.0]]), torch.tensor([0.75]), torch.tensor([1])), Detections.empty()]


def test_write_predictions_layout_and_coco_results(tmp_path):
    paths = [Path("a/x.jpg"), Path("b/x.png")]  # same stem twice
    ims = [np.zeros((30, 40, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)]
    out = write_predictions(tmp_path / "out", paths, ims, _dets(), ["cat", "dog"])
    assert sorted(p.name for p in out.iterdir()) == ["images.json", "results.json", "x.jpg", "x_2.jpg"]
    index = json.loads((out / "images.json").read_text())
    assert index["images"][0] == {"id": 1, "file": "a/x.jpg", "width": 40, "height": 30}
    # images.json + results.json read back through the COCO readers the score command uses
    coco = {**index, "annotations": []}
    (tmp_path / "gt.json").write_text(json.dumps({**coco, "images": [{**i, "file_name": i["file"]} for i in index["images"]]}))
    _, ids = read_coco_with_ids(tmp_path / "gt.json")
    back = read_coco_results(out / "results.json", ids)
    assert torch.allclose(back[0].boxes, _dets()[0].boxes) and back[0].labels.tolist() == [1] and len(back[1]) == 0


def test_write_predictions_refuses_non_empty_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("k")
    with pytest.raises(ConfigError):
        write_predictions(tmp_path / "out", [Path("x.jpg")], [np.zeros((8, 8, 3), np.uint8)], _dets()[:1], ["a", "b"])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep"]


def test_detections_doc_and_missing_shipped():
    doc = detections_doc([Path("x.jpg"), Path("y.jpg")], _dets(), ["cat", "dog"])
    assert doc["images"][0]["detections"][0] == {"box_xyxy": [1.0, 2.0, 11.0, 22.0], "score": 0.75, "label": 1, "class": "dog"}
    assert shipped_detector("no-such-arch") is None
