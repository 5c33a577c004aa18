"""COCO scoring against pycocotools itself, on files in COCO's own shape.

Files follow https://cocodataset.org/#format-data ("Object Detection" annotations and the results
format of "Results Format": ``[{image_id, category_id, bbox, score}]``) and keep what real val2017
files have: non-contiguous category ids, ``iscrowd`` regions, ``area`` (the mask area) smaller than
the box, images without annotations. pycocotools' ``COCOeval`` (bbox) run on the same two files is
the reference; it is not used by the code under test.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from convsight.detection.metrics import COCO_STAT_NAMES, evaluate_detections
from convsight.io.coco import read_coco, read_coco_results

CATEGORY_IDS = (1, 3, 12, 44, 67, 90)  # COCO's ids are not 1..C


def coco_problem(seed: int, n_images: int = 40) -> tuple[dict, list[dict]]:
    """An instances document and a results list with every case the issue lists (see the test names)."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(n_images):
        iid = 1000 + 13 * i
        w, h = int(rng.integers(200, 640)), int(rng.integers(200, 640))
        images.append({"id": iid, "file_name": f"{iid:012d}.jpg", "width": w, "height": h, "license": 2,
                       "coco_url": f"http://images.cocodataset.org/val2017/{iid:012d}.jpg"})
        k = 0 if i % 6 == 0 else int(rng.integers(1, 9))  # every sixth image has no ground truth
        cats = rng.choice(CATEGORY_IDS[:-1], k)  # the last category never has ground truth
        for j in range(k):
            side = float(np.exp(rng.uniform(np.log(6), np.log(min(w, h) * 0.8))))
            bw, bh = side * float(np.exp(rng.uniform(-0.4, 0.4))), side * float(np.exp(rng.uniform(-0.4, 0.4)))
            bw, bh = min(bw, w - 1), min(bh, h - 1)
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            crowd = int(rng.random() < 0.12)
            ann = {"id": len(anns) + 1, "image_id": iid, "category_id": int(cats[j]),
                   "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
                   "area": round(bw * bh * float(rng.uniform(0.3, 0.95)), 2), "iscrowd": crowd,
                   "segmentation": {"counts": "PPYo0", "size": [h, w]} if crowd else [[x, y, x + bw, y, x + bw, y + bh]]}
            if rng.random() < 0.1:
                ann["ignore"] = 1  # pycocotools overwrites this with iscrowd
            anns.append(ann)
            # 0-3 jittered hits (more inside crowd regions), right class 85% of the time
            for _ in range(int(rng.integers(0, 4)) + 2 * crowd):
                jit = rng.normal(0, 0.1, 4) * [bw, bh, bw, bh]
                sx, sy, sw, sh = (x, y, bw, bh) if not crowd else (x + rng.uniform(0, bw / 2), y + rng.uniform(0, bh / 2), bw / 3, bh / 3)
                cat = int(cats[j]) if rng.random() < 0.85 else int(rng.choice(CATEGORY_IDS))
                results.append({"image_id": iid, "category_id": cat, "bbox": [round(float(v), 2) for v in
                                (sx + jit[0], sy + jit[1], max(sw + jit[2], 1), max(sh + jit[3], 1))],
                                "score": round(float(rng.beta(4, 2)), 4)})
        # false positives, many of one class on some images (so maxDets 1/10/100 all bite)
        n_fp = 130 if i == 5 else int(rng.integers(0, 25))
        cat = int(cats[0]) if i == 5 else int(rng.choice(CATEGORY_IDS))
        for _ in range(n_fp):
            fw, fh = float(rng.uniform(3, 200)), float(rng.uniform(3, 200))
            results.append({"image_id": iid, "category_id": cat if i == 5 or rng.random() < 0.6 else int(rng.choice(CATEGORY_IDS)),
                            "bbox": [round(float(rng.uniform(0, w - 3)), 2), round(float(rng.uniform(0, h - 3)), 2),
                                     round(fw, 2), round(fh, 2)], "score": round(float(rng.beta(2, 4)), 4)})
        if i == 5:  # a perfect hit ranked 131st: only the maxDets=100 cut keeps it from counting
            first = next(a for a in anns if a["image_id"] == iid and not a["iscrowd"])
            results.append({"image_id": iid, "category_id": first["category_id"], "bbox": first["bbox"], "score": 1e-5})
    categories = [{"id": c, "name": f"thing{c}", "supercategory": "stuff" if c > 60 else "animal"} for c in CATEGORY_IDS]
    doc = {"info": {"description": "test", "version": "1.0", "year": 2017}, "licenses": [{"id": 2, "name": "CC", "url": ""}],
           "images": images, "annotations": anns, "categories": categories}
    return doc, results


def pycocotools_eval(gt_path, res_path, max_dets=(1, 10, 100)) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(res_path)), "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def write(tmp_path, doc, results):
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    (tmp_path / "res.json").write_text(json.dumps(results))
    return tmp_path / "gt.json", tmp_path / "res.json"


def ours(gt_path, res_path, **kwargs):
    ds = read_coco(gt_path)
    dets = read_coco_results(res_path, ds)
    return ds, evaluate_detections(dets, ds.images, ds.num_classes, ds.class_names, **kwargs)


def assert_stats_equal(metrics, stats) -> None:
    for name, ref in zip(COCO_STAT_NAMES, stats, strict=True):
        value = getattr(metrics, name)
        if ref == -1:
            assert math.isnan(value), name
        else:
            assert value == pytest.approx(ref, abs=1e-6), name


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_twelve_stats_equal_pycocotools(tmp_path, seed):
    doc, results = coco_problem(seed)
    assert sum(a["iscrowd"] for a in doc["annotations"]) > 0 and any("ignore" in a for a in doc["annotations"])
    gt_path, res_path = write(tmp_path, doc, results)
    ref = pycocotools_eval(gt_path, res_path)
    ds, m = ours(gt_path, res_path)
    assert_stats_equal(m, ref.stats)
    assert m.mar1 < m.mar10  # the maxDets cut matters on this problem
    _, uncut = ours(gt_path, res_path, max_dets=1000)
    assert uncut.mar100 > m.mar100  # (mar100 is AR@max_dets): the 131st detection counts only uncut
    # per-class AP from the same arrays: pycocotools' precision, area all, maxDets 100
    prec = ref.eval["precision"][:, :, :, 0, 2]
    for k, cid in enumerate(ref.params.catIds):
        assert ds.category_id(k) == cid
        p = prec[:, :, k]
        c = m.per_class[ds.class_names[k]]
        if (p > -1).any():
            assert c.ap == pytest.approx(p.mean(), abs=1e-9) and c.ap50 == pytest.approx(p[0].mean(), abs=1e-9)
        else:
            assert math.isnan(c.ap) and c.num_gt == 0 and c.num_det > 0  # detections, no ground truth
    assert m.num_images == len(doc["images"])


def test_smaller_max_dets_equal_pycocotools(tmp_path):
    gt_path, res_path = write(tmp_path, *coco_problem(7))
    ref = pycocotools_eval(gt_path, res_path, max_dets=(1, 10, 20))
    _, m = ours(gt_path, res_path, max_dets=20)
    # pycocotools' summarize looks the first AP up at maxDets == 100 literally (-1 here); the
    # others use maxDets[2]. So AP comes from its precision array, the rest from its stats.
    p = ref.eval["precision"][:, :, :, 0, 2]
    assert ref.stats[0] == -1 and m.map == pytest.approx(p[p > -1].mean(), abs=1e-6)
    assert_stats_equal(m, [m.map, *ref.stats[1:]])


def test_ground_truth_as_predictions_scores_one_despite_crowd(tmp_path):
    # The example: the non-crowd ground truth of an image given back as predictions. Crowd
    # regions overlap some of the objects; read as ordinary boxes they would cost recall (0.974).
    doc = {"images": [{"id": 139, "file_name": "000000000139.jpg", "width": 640, "height": 426}],
           "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                          {"id": 62, "name": "chair", "supercategory": "furniture"}],
           "annotations": [
               {"id": 1, "image_id": 139, "category_id": 1, "bbox": [412.8, 157.61, 53.05, 138.01], "area": 2913.11, "iscrowd": 0},
               {"id": 2, "image_id": 139, "category_id": 1, "bbox": [384.43, 172.21, 15.12, 35.74], "area": 435.14, "iscrowd": 0},
               {"id": 3, "image_id": 139, "category_id": 62, "bbox": [292.37, 218.88, 59.63, 100.83], "area": 2918.77, "iscrowd": 0},
               {"id": 4, "image_id": 139, "category_id": 62, "bbox": [361.0, 218.31, 37.93, 102.72], "area": 2126.6, "iscrowd": 0},
               {"id": 5, "image_id": 139, "category_id": 1, "bbox": [370.0, 150.0, 120.0, 160.0], "area": 12000.0,
                "iscrowd": 1, "segmentation": {"counts": [0, 10, 20], "size": [426, 640]}},
               {"id": 6, "image_id": 139, "category_id": 62, "bbox": [280.0, 210.0, 130.0, 120.0], "area": 9000.0,
                "iscrowd": 1, "segmentation": {"counts": [0, 10, 20], "size": [426, 640]}}]}
    results = [{"image_id": 139, "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in doc["annotations"] if not a["iscrowd"]]
    gt_path, res_path = write(tmp_path, doc, results)
    ref = pycocotools_eval(gt_path, res_path)
    _, m = ours(gt_path, res_path)
    assert ref.stats[0] == pytest.approx(1.0) and m.map == pytest.approx(1.0) and m.mar100 == pytest.approx(1.0)
    assert m.per_class["person"].num_gt == 2  # the crowd region is not an object
    assert_stats_equal(m, ref.stats)


def test_area_field_decides_size_and_ignore_key_changes_nothing(tmp_path):
    # One 40x40 box (box area 1600: "medium") whose mask area is 900 ("small"): pycocotools files it
    # under small. An `ignore: 1` key does nothing in COCOeval (iscrowd overwrites it).
    doc = {"images": [{"id": 5, "file_name": "a.jpg", "width": 100, "height": 100}],
           "categories": [{"id": 18, "name": "dog"}],
           "annotations": [{"id": 9, "image_id": 5, "category_id": 18, "bbox": [10, 10, 40, 40], "area": 900.0,
                            "iscrowd": 0, "ignore": 1}]}
    results = [{"image_id": 5, "category_id": 18, "bbox": [10, 10, 40, 40], "score": 0.9}]
    gt_path, res_path = write(tmp_path, doc, results)
    ref = pycocotools_eval(gt_path, res_path)
    ds, m = ours(gt_path, res_path)
    assert bool(ds[0].ignore[0]) and ds[0].areas.tolist() == [900.0]
    assert m.map_small == pytest.approx(1.0) and math.isnan(m.map_medium)
    assert_stats_equal(m, ref.stats)


def test_absent_area_means_box_area(tmp_path):
    doc, results = coco_problem(3, n_images=12)
    with_area = json.loads(json.dumps(doc))
    for a in doc["annotations"]:
        del a["area"]
    for a in with_area["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]  # what pycocotools needs to be told explicitly
    (tmp_path / "ref.json").write_text(json.dumps(with_area))
    gt_path, res_path = write(tmp_path, doc, results)
    ref = pycocotools_eval(tmp_path / "ref.json", res_path)
    _, m = ours(gt_path, res_path)
    assert_stats_equal(m, ref.stats)


def test_no_detections_and_empty_sets():
    import torch

    from convsight.structures import Detections, Target

    gt = [Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0])), Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))]
    m = evaluate_detections([Detections.empty(), Detections.empty()], gt, 2)
    assert m.map == 0.0 and m.mar100 == 0.0 and math.isnan(m.per_class["1"].ap)
    m = evaluate_detections([], [], 3)
    assert all(math.isnan(getattr(m, k)) for k in COCO_STAT_NAMES) and m.num_images == 0


def test_a_stray_label_does_not_alias_another_class():
    import torch

    from convsight.structures import Detections, Target

    gt = [Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1])), Target(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]))]
    good = [Detections(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0.9]), torch.tensor([1])), Detections.empty()]
    # label 2 of image 0 would share the (image, class) key of image 1's class 0 if it were kept
    stray = [Detections(torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]]), torch.tensor([0.9, 0.8]), torch.tensor([1, 2])),
             Detections.empty()]
    a, b = evaluate_detections(good, gt, 2), evaluate_detections(stray, gt, 2)
    assert a.to_dict() == b.to_dict()
    assert b.per_class["0"].voc_ap50 == 0.0  # image 1's object was not found
