from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet, ImageAnnotation, Problem
from convsight.io.coco import (
    CocoIds,
    detections_to_coco_results,
    read_coco,
    read_coco_results,
    read_coco_with_ids,
    to_coco_dict,
    write_coco,
)
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


def coco_instances():
    """An instances file in the shape of COCO's own val2017 file (https://cocodataset.org/#format-data,
    "1. Object Detection"; the info/licenses header and the image records are shaped after
    instances_val2017.json's, e.g. its image 397133; annotations shortened): non-contiguous category ids with supercategories, polygon segmentations, a
    crowd region with an uncompressed RLE (``counts`` list + ``size``), ``area`` smaller than the box,
    an image without annotations."""
    return {
        "info": {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
                 "contributor": "COCO Consortium", "date_created": "2017/09/01"},
        "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                      "name": "Attribution-NonCommercial-ShareAlike License"},
                     {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"}],
        "images": [
            {"license": 4, "file_name": "000000397133.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
             "height": 427, "width": 640, "date_captured": "2013-11-14 17:02:52",
             "flickr_url": "http://farm7.staticflickr.com/6116/6255196340_da26cf2c9e_z.jpg", "id": 397133},
            {"license": 1, "file_name": "000000037777.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000037777.jpg",
             "height": 230, "width": 352, "date_captured": "2013-11-14 20:55:31",
             "flickr_url": "http://farm9.staticflickr.com/8429/7839199426_f6d48aa585_z.jpg", "id": 37777},
            {"license": 1, "file_name": "000000252219.jpg", "coco_url": "http://images.cocodataset.org/val2017/000000252219.jpg",
             "height": 428, "width": 640, "date_captured": "2013-11-14 22:32:02",
             "flickr_url": "http://farm4.staticflickr.com/3446/3232237447_13d84bd0a1_z.jpg", "id": 252219},
        ],
        "annotations": [
            {"segmentation": [[224.24, 297.18, 228.29, 297.18, 234.91, 298.29, 240.43, 297.55, 244.17, 297.18, 246.0, 303.6,
                               233.44, 302.14, 226.08, 302.14, 222.77, 301.2]],
             "area": 702.1057499999998, "iscrowd": 0, "image_id": 397133, "bbox": [217.62, 240.54, 38.99, 57.75],
             "category_id": 44, "id": 82445},
            {"segmentation": [[388.66, 69.92, 409.64, 71.88, 410.42, 89.39, 410.42, 136.5, 392.63, 135.28, 388.66, 69.92]],
             "area": 2854.6, "iscrowd": 0, "image_id": 397133, "bbox": [388.66, 69.92, 21.76, 66.58],
             "category_id": 1, "id": 2162813},
            {"segmentation": {"counts": [272, 2, 4, 4, 4, 4, 2, 9, 1, 2, 16, 43, 143, 24, 5, 8, 16, 44, 141, 25, 8],
                              "size": [427, 640]},
             "area": 7543, "iscrowd": 1, "image_id": 397133, "bbox": [0, 5, 160, 212],
             "category_id": 1, "id": 900100397133},
            {"segmentation": [[81.57, 133.8, 95.88, 134.27, 95.88, 160.9, 81.57, 160.9]], "area": 312.47, "iscrowd": 0,
             "image_id": 37777, "bbox": [81.57, 133.8, 14.31, 27.1], "category_id": 88, "id": 1769},
        ],
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "kitchen", "id": 44, "name": "bottle"},
                       {"supercategory": "indoor", "id": 88, "name": "teddy bear"}],
    }


def test_reads_coco_as_pycocotools_does(tmp_path):
    from pycocotools.coco import COCO

    path = _write(tmp_path, coco_instances())
    ds = read_coco(path)
    assert ds.class_names == ("person", "bottle", "teddy bear") and ds.category_ids == (1, 44, 88)
    assert [im.image_id for im in ds.images] == [397133, 37777, 252219] and len(ds[2]) == 0
    im = ds[0]
    assert im.crowd.tolist() == [False, False, True] and im.box_ids.tolist() == [82445, 2162813, 900100397133]
    assert im.areas.tolist() == [702.1057499999998, 2854.6, 7543.0]
    assert im.segmentations[2]["size"] == [427, 640] and isinstance(im.segmentations[0], list)
    assert im.extra["coco_url"].endswith("000000397133.jpg") and im.extra["license"] == 4
    assert ds.meta["info"]["year"] == 2017 and len(ds.meta["licenses"]) == 2
    assert ds.meta["supercategories"]["teddy bear"] == "indoor" and ds.provenance["format"] == "coco"
    # crowd counted as pycocotools counts it
    with contextlib.redirect_stdout(io.StringIO()):
        ref = COCO(str(path))
    n_crowd = len(ref.getAnnIds(iscrowd=True))
    assert sum(int(im.crowd.sum()) for im in ds.images) == n_crowd == 1
    assert ds.category_id(ds.class_names.index("teddy bear")) == 88


def test_round_trip_keeps_ids_segmentation_and_meta(tmp_path):
    doc = coco_instances()
    ds = read_coco(_write(tmp_path, doc))
    out = write_coco(ds, tmp_path / "out.json")
    back = json.loads(out.read_text())
    key = lambda a: a["id"]
    for a, b in zip(sorted(doc["annotations"], key=key), sorted(back["annotations"], key=key), strict=True):
        assert {k: b[k] for k in ("id", "image_id", "category_id", "iscrowd", "segmentation", "area")} == \
               {k: a[k] for k in ("id", "image_id", "category_id", "iscrowd", "segmentation", "area")}
        assert b["bbox"] == pytest.approx(a["bbox"], abs=1e-4)  # float32 boxes inside convsight
    assert back["images"] == doc["images"]
    assert back["info"] == doc["info"] and back["licenses"] == doc["licenses"]
    assert sorted(back["categories"], key=key) == sorted(doc["categories"], key=key)
    again = read_coco(out)
    assert again.same_as(ds) and again.category_ids == ds.category_ids


def test_crowd_region_box_needs_no_size_but_objects_do(tmp_path):
    doc = coco_instances()
    doc["annotations"][2]["bbox"] = [0, 5, 160, 0]  # a degenerate crowd box: kept (pycocotools keeps it)
    assert len(read_coco(_write(tmp_path, doc))[0]) == 3
    doc["annotations"][0]["bbox"] = [217.62, 240.54, 0, 57.75]
    with pytest.raises(DatasetError, match="zero or negative width/height"):
        read_coco(_write(tmp_path, doc))


def test_problems_are_collected_and_records_skipped(tmp_path):
    doc = coco_instances()
    doc["annotations"] += [
        {"id": 5, "image_id": 397133, "category_id": 2, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},  # no category 2
        {"id": 6, "image_id": 12345, "category_id": 1, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0},  # no image
        {"id": 7, "image_id": 37777, "category_id": 1, "bbox": [300, 1, 500, 5], "area": 25, "iscrowd": 0},  # outside
        {"id": 8, "image_id": 37777, "category_id": 1, "bbox": [1, 1, 5], "area": 25, "iscrowd": 0},  # 3 numbers
    ]
    doc["images"].append(dict(doc["images"][1], file_name="copy.jpg"))  # duplicate id 37777
    found: list[Problem] = []
    ds = read_coco(_write(tmp_path, doc), problems=found)
    reasons = " | ".join(p.reason for p in found)
    for text in ("unknown category_id 2", "unknown image_id 12345", "outside the 352x230 image", "4 numbers",
                 "duplicate image id 37777"):
        assert text in reasons
    assert len(found) == 5 and all("gt.json" in p.file for p in found)
    assert len(ds) == 3 and [len(im) for im in ds.images] == [3, 1, 0]  # the good records are all there


def test_writer_numbers_a_set_without_ids(tmp_path):
    ims = (ImageAnnotation(tmp_path / "a.jpg", 20, 10, torch.tensor([[1.0, 1, 5, 5]]), torch.tensor([1])),
           ImageAnnotation(tmp_path / "b.jpg", 20, 10, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)))
    doc = to_coco_dict(AnnotationSet(ims, ("cat", "dog")), tmp_path)
    assert [i["id"] for i in doc["images"]] == [1, 2] and doc["images"][0]["file_name"] == "a.jpg"
    assert doc["annotations"] == [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1.0, 1.0, 4.0, 4.0], "area": 16.0,
                                   "iscrowd": 0}]
    assert [c["id"] for c in doc["categories"]] == [1, 2]


def test_results_use_the_datasets_own_ids(tmp_path):
    ds = read_coco(_write(tmp_path, coco_instances()))
    ids = CocoIds.of(ds)
    assert ids.image_ids == (397133, 37777, 252219) and ids.category_ids == (1, 44, 88)
    dets = [Detections(torch.tensor([[10.0, 20, 30, 60]]), torch.tensor([0.5]), torch.tensor([2])), Detections.empty(),
            Detections.empty()]
    res = detections_to_coco_results(dets, ids.image_ids, ids.category_ids)
    assert res[0]["image_id"] == 397133 and res[0]["category_id"] == 88
    p = tmp_path / "res.json"
    p.write_text(json.dumps(res))
    back = read_coco_results(p, ds)
    assert torch.equal(back[0].boxes, dets[0].boxes) and back[0].labels.tolist() == [2] and len(back[2]) == 0


def test_fast_and_record_by_record_paths_agree(tmp_path, monkeypatch):
    from convsight.io import coco
    from convsight.io.coco_columns import annotation_columns

    doc = coco_instances()
    doc["annotations"][1].pop("area")
    doc["annotations"][1]["ignore"] = 1
    path = _write(tmp_path, doc)
    sizes = np.array([(im["width"], im["height"]) for im in doc["images"]], dtype=np.float64)
    assert annotation_columns(doc["annotations"], [im["id"] for im in doc["images"]], sizes, [1, 44, 88]) is not None
    fast = read_coco(path)
    monkeypatch.setattr(coco, "annotation_columns", lambda *args: None)
    slow = read_coco(path)
    assert fast.same_as(slow)
    for a, b in zip(fast.images, slow.images, strict=True):
        assert torch.equal(a.box_ids, b.box_ids) and torch.equal(a.areas.isnan(), b.areas.isnan())
        assert torch.equal(a.areas.nan_to_num(), b.areas.nan_to_num()) and a.segmentations == b.segmentations
        assert torch.equal(a.ignore, b.ignore) and a.image_id == b.image_id and a.extra == b.extra
    # a bbox given as strings is not "4 numbers" on either path
    doc["annotations"][0]["bbox"] = ["217.62", "240.54", "38.99", "57.75"]
    monkeypatch.undo()
    with pytest.raises(DatasetError, match="4 numbers"):
        read_coco(_write(tmp_path, doc))
