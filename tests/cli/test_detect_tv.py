"""``convsight detect`` with torchvision's detectors (``--arch tv:NAME``): eval, predict, train, offline.

The COCO data set here is in COCO's own shape (cocodataset.org, "Data format", object detection:
``images[]`` with id / file_name / width / height, ``annotations[]`` with id / image_id / category_id /
bbox ``[x, y, width, height]`` / area / iscrowd, ``categories[]`` with id / name / supercategory), with
COCO 2017's real 80 category ids (12, 26, ... skipped), so results must carry those ids.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from convsight.io.images import save_image

from ..detection.test_tv_build import COCO_2017

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets on a busy 2-core machine
SSDLITE = "tv:ssdlite320_mobilenet_v3_large"


@pytest.fixture
def coco(tmp_path):  # type: ignore[no-untyped-def]
    """Two photos-to-be (noise, 96 x 128) annotated with COCO's 80 categories: a person and a cup."""
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in (1, 2):
        save_image(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), root / "images" / f"{i:012d}.png")
        images.append({"id": 100 + i, "file_name": f"images/{i:012d}.png", "width": 128, "height": 96})
        for k, (cat, box) in enumerate(((1, [10, 12, 40, 60]), (47, [70, 30, 30, 40]))):
            anns.append({"id": 10 * i + k, "image_id": 100 + i, "category_id": cat, "bbox": box,
                         "area": float(box[2] * box[3]), "iscrowd": 0})
    cats = [{"id": c, "name": n, "supercategory": "thing"} for c, n in COCO_2017]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def test_help_names_the_seven(cli):
    from convsight.cli.detect import ARCH_HELP, RUN_ARCH_HELP, TV_ARCHS
    from convsight.detection.tv_build import MODELS

    assert TV_ARCHS == tuple(m.arch for m in MODELS.values())  # the CLI's list (no torch import) is torchvision's
    assert all(a in ARCH_HELP and a in RUN_ARCH_HELP for a in TV_ARCHS)
    r = cli("detect", "predict", "--help")
    assert r.code == 0 and "torchvision's" in r.stdout and "tv:" in r.stdout


def test_eval_on_a_coco_dataset(cli, coco):
    r = cli("detect", "eval", coco / "annotations.json", "--arch", SSDLITE, "--weights", "random", "--json",
            "--device", "cpu")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["weights"] == "random" and len(doc["per_class"]) == 80
    assert doc["per_class"]["cup"]["num_gt"] == 2 and doc["per_class"]["person"]["num_gt"] == 2
    assert 0.0 <= doc["map50"] <= 1.0 and doc["val_loss"] > 0


def test_predict_writes_the_datasets_category_ids(cli, coco, tmp_path):
    out = tmp_path / "pred"
    r = cli("detect", "predict", "--data", coco / "annotations.json", "--arch", SSDLITE, "--weights", "random",
            "--conf", "0.05", "-o", out, "--json", "--device", "cpu")
    assert r.code == 0, r.stderr
    found = [d["class"] for im in json.loads(r.stdout)["images"] for d in im["detections"]]
    results = json.loads((out / "results.json").read_text())
    assert found and len(results) == len(found)
    name_of = dict(COCO_2017)
    assert sorted(name_of[x["category_id"]] for x in results) == sorted(found)  # COCO's ids, not 1..80
    assert {x["image_id"] for x in results} <= {101, 102}


def test_predict_on_photos_writes_cocos_own_ids(cli, coco, tmp_path):
    out = tmp_path / "pred"
    r = cli("detect", "predict", coco / "images", "--arch", SSDLITE, "--weights", "random", "-o", out, "--device", "cpu")
    assert r.code == 0, r.stderr
    index = json.loads((out / "images.json").read_text())
    assert [(c["id"], c["name"]) for c in index["categories"]] == COCO_2017


def test_no_weights_is_one_line_and_exit_2(cli, coco, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    monkeypatch.delenv("CONVSIGHT_ALLOW_DOWNLOAD", raising=False)
    r = cli("detect", "predict", coco / "images", "--arch", SSDLITE, "-o", tmp_path / "pred")
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not on this machine" in r.stderr and "CONVSIGHT_ALLOW_DOWNLOAD=1" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "pred").exists()
    r = cli("detect", "eval", coco / "annotations.json", "--arch", SSDLITE, "--weights", tmp_path / "missing.pth")
    assert r.code == 2 and "missing.pth" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_train_fine_tunes_and_the_file_predicts(cli, tmp_path, monkeypatch):
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig

    data = tmp_path / "scenes"
    write_synthetic(data, 8, SynthConfig(image_size=(64, 64), max_objects=2, min_size=12), seed=0, fmt="coco")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    monkeypatch.delenv("CONVSIGHT_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # train sets its own thread count unless told (one_torch_thread)
    args = ("detect", "train", "--arch", SSDLITE, "--data", data, "--epochs", "1", "--batch-size", "4",
            "--image-size", "64", "--device", "cpu", "-o", tmp_path / "run")
    r = cli(*args)  # the default start is COCO's detector: absent here, and SSDlite has no ImageNet start
    errors = [line for line in r.stderr.splitlines() if line.startswith("convsight: error:")]
    assert r.code == 2 and len(errors) == 1 and "COCO weights" in errors[0] and "--backbone-weights none" in errors[0]
    assert "Traceback" not in r.stderr
    r = cli(*args, "--backbone-weights", "none", "--json")
    assert r.code == 0, r.stderr
    weights = json.loads(r.stdout)["weights"]
    r = cli("detect", "predict", data / "images", "--weights", weights, "--arch", SSDLITE, "--conf", "0.0",
            "--json", "-o", tmp_path / "pred", "--device", "cpu")
    assert r.code == 0, r.stderr
    classes = {d["class"] for im in json.loads(r.stdout)["images"] for d in im["detections"]}
    from convsight.io.formats import read_dataset

    assert classes and classes <= set(read_dataset(data).class_names)  # the data set's classes, not COCO's
