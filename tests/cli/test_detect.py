from __future__ import annotations

import json

import pytest

from convsight.io.coco import detections_to_coco_results, to_coco_dict

from ..detection.test_metrics import cocoeval, random_problem


@pytest.fixture
def files(tmp_path):
    ds, preds = random_problem(3)
    (tmp_path / "gt.json").write_text(json.dumps(to_coco_dict(ds, tmp_path)))
    res = detections_to_coco_results(preds, [i + 1 for i in range(len(ds))], [k + 1 for k in range(ds.num_classes)])
    (tmp_path / "preds.json").write_text(json.dumps(res))
    return tmp_path, cocoeval(ds, preds)


def test_json_output_equals_cocoeval(cli, files):
    root, ref = files
    r = cli("detect", "score", root / "gt.json", root / "preds.json", "--json", "--plot", root / "pr.png")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)  # exactly one JSON document
    assert doc["map"] == pytest.approx(ref.stats[0], abs=1e-4)
    assert doc["map50"] == pytest.approx(ref.stats[1], abs=1e-4)
    assert set(doc["per_class"]) == {"c0", "c1", "c2", "c3", "c4"}
    assert (root / "pr.png").stat().st_size > 0


def test_human_output(cli, files):
    root, _ = files
    r = cli("detect", "score", root / "gt.json", root / "preds.json")
    assert r.code == 0 and "map50" in r.stdout and "c2" in r.stdout


@pytest.mark.parametrize(
    "preds, message",
    [(None, "file not found"), ("{oops", "not valid JSON"),
     ('[{"image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1], "score": 0.5}]', "category_id 99"),
     ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]', "missing key 'category_id'")],
)
def test_errors_are_one_line_exit_2(cli, files, preds, message):
    root, _ = files
    p = root / "bad.json"
    if preds is not None:
        p.write_text(preds)
    r = cli("detect", "score", root / "gt.json", p)
    assert r.code == 2 and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr and r.stdout == ""


def test_pretrain_cli_writes_backbone_and_json(cli, tmp_path):
    from convsight.io.synth_writer import write_crops
    from convsight.io.synthetic import SynthConfig

    write_crops(tmp_path / "crops", 12, SynthConfig(image_size=(96, 96), min_size=10, min_objects=1), seed=0, crop_size=24)
    r = cli("detect", "pretrain", tmp_path / "crops", "--out", tmp_path / "run", "--epochs", "1",
            "--image-size", "24", "--batch-size", "16", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["epochs"] == 1 and doc["classes"][-1] == "background"
    assert 0.0 <= doc["val_accuracy"] <= 1.0
    assert (tmp_path / "run" / "backbone.safetensors").is_file()


def test_pretrain_cli_missing_folder_is_one_line(cli, tmp_path):
    r = cli("detect", "pretrain", tmp_path / "nope", "--out", tmp_path / "run")
    assert r.code == 2 and r.stderr.count("\n") == 1 and "crops folder not found" in r.stderr and "nope" in r.stderr
