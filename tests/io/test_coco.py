from __future__ import annotations

import json

import pytest
import torch

from convsight.errors import DatasetError
from convsight.io.coco import detections_to_coco_results, read_coco, read_coco_results, read_coco_with_ids, write_coco
from convsight.structures import Detections


def _doc():
    return {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50},
                   {"id": 9, "file_name": "b.jpg", "width": 10, "height": 10}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 5, 20.5, 30]}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}],
    }


def _write(tmp_path, doc):
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(doc))
    return p


def test_reads_xywh_as_xyxy_and_maps_ids(tmp_path):
    ds, ids = read_coco_with_ids(_write(tmp_path, _doc()))
    assert ds.class_names == ("dog", "cat")  # ordered by category id
    assert ids.category_ids == (1, 3) and ids.image_ids == (7, 9)
    assert ds[0].boxes.tolist() == [[10.0, 5.0, 30.5, 35.0]]
    assert ds[0].labels.tolist() == [1]
    assert len(ds[1]) == 0  # image without annotations is kept
    assert ds[0].path == tmp_path / "a.jpg"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("images"), "missing key 'images'"),
        (lambda d: d["annotations"][0].pop("bbox"), "missing key 'bbox'"),
        (lambda d: d["annotations"][0].update(image_id=99), "unknown image_id 99"),
        (lambda d: d["annotations"][0].update(category_id=5), "unknown category_id 5"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "4 numbers"),
        (lambda d: d["annotations"][0].update(bbox=[10, 5, -3, 4]), "negative"),
        (lambda d: d["annotations"][0].update(bbox=[90, 5, 40, 4]), "outside"),
        (lambda d: d["images"][0].update(width="100"), "wrong type"),
        (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, mutate, message):
    doc = _doc()
    mutate(doc)
    with pytest.raises(DatasetError, match=message) as e:
        read_coco(_write(tmp_path, doc))
    assert "gt.json" in str(e.value)


def test_not_json(tmp_path):
    p = tmp_path / "gt.json"
    p.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_coco(p)
    with pytest.raises(DatasetError, match="not found"):
        read_coco(tmp_path / "missing.json")


def test_write_then_read(tmp_path):
    ds = read_coco(_write(tmp_path, _doc()))
    write_coco(ds, tmp_path / "out.json")
    assert read_coco(tmp_path / "out.json").same_as(ds)


def test_results_round_trip(tmp_path):
    ds, ids = read_coco_with_ids(_write(tmp_path, _doc()))
    dets = [Detections(torch.tensor([[1.0, 2.0, 3.5, 4.0]]), torch.tensor([0.9]), torch.tensor([1])), Detections.empty()]
    results = detections_to_coco_results(dets, ids.image_ids, ids.category_ids)
    assert results == [{"image_id": 7, "category_id": 3, "bbox": [1.0, 2.0, 2.5, 2.0], "score": pytest.approx(0.9)}]
    p = tmp_path / "res.json"
    p.write_text(json.dumps(results))
    back = read_coco_results(p, ids)
    assert torch.equal(back[0].boxes, dets[0].boxes) and torch.equal(back[0].labels, dets[0].labels)
    assert len(back[1]) == 0
    p.write_text(json.dumps([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}]))
    with pytest.raises(DatasetError, match="image_id 1 is not in the ground truth"):
        read_coco_results(p, ids)
