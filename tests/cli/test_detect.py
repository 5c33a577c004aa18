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


@pytest.fixture(scope="module")
def toy_scenes(tmp_path_factory):
    import tests.detection.conftest  # noqa: F401  (registers the toy detector)
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig

    root = tmp_path_factory.mktemp("cli_det") / "scenes"
    write_synthetic(root, 10, SynthConfig(image_size=(64, 64), max_objects=2, min_size=10), seed=0, fmt="coco")
    return root


def test_train_eval_predict_round_trip(cli, tmp_path, toy_scenes):
    r = cli("detect", "train", "--arch", "toy", "--data", toy_scenes, "--out", tmp_path / "run", "--epochs", "2",
            "--batch-size", "4", "--image-size", "32", "--set", 'postprocess={"topk": 5}', "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    weights = doc["weights"]
    assert doc["epochs"] == 2 and "map50" in doc["val"]
    r = cli("detect", "eval", toy_scenes, "--weights", weights, "--json", "--plot", tmp_path / "pr.png")
    assert r.code == 0, r.stderr
    ev = json.loads(r.stdout)
    assert 0.0 <= ev["map50"] <= 1.0 and ev["ms_per_image"] > 0 and (tmp_path / "pr.png").is_file()
    r = cli("detect", "predict", toy_scenes / "images", "--weights", weights, "--out", tmp_path / "pred", "--conf", "0.01", "--json")
    assert r.code == 0, r.stderr
    pred = json.loads(r.stdout)
    assert len(pred["images"]) == 10 and all(len(i["detections"]) <= 5 for i in pred["images"])
    out = tmp_path / "pred"
    assert len(list(out.glob("*.jpg"))) == 10
    results = json.loads((out / "results.json").read_text())
    assert {d["image_id"] for d in results} <= set(range(1, 11))
    # a second predict into the same folder needs --overwrite, and leaves the first output intact
    r = cli("detect", "predict", toy_scenes / "images", "--weights", weights, "--out", out)
    assert r.code == 2 and "--overwrite" in r.stderr and (out / "results.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["train", "--arch", "nope", "--data", "{scenes}"], "unknown detector architecture 'nope'"),
    (["train", "--arch", "toy", "--data", "{scenes}", "--set", "colour=red"], "unknown option(s) colour"),
    (["train", "--arch", "toy", "--data", "{scenes}", "--set", "oops"], "--set expects key=value"),
    (["eval", "{scenes}", "--weights", "{tmp}/missing.safetensors"], "weights file not found"),
    (["predict", "{tmp}/nothing.jpg", "--weights", "{tmp}/missing.safetensors"], "weights file not found"),
    (["predict", "{tmp}/x.jpg", "--arch", "nope"], "no shipped weights for 'nope'"),
])
def test_detect_errors_are_one_line(cli, tmp_path, toy_scenes, args, message):
    args = [a.format(scenes=toy_scenes, tmp=tmp_path) for a in args]
    r = cli("detect", *args, "--out" if args[0] != "eval" else "--batch-size", tmp_path / "o" if args[0] != "eval" else "2")
    assert r.code == 2, r.stderr
    assert r.stderr.count("\n") == 1 and message in r.stderr
