from __future__ import annotations

import json

import pytest

from convsight.errors import ConfigError


def test_demo_refuses_to_wipe_a_folder_it_did_not_write(tmp_path):
    from convsight.demo import prepare_out, run_demo

    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not written by"):
        run_demo(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        prepare_out(tmp_path / "file")


def test_demo_replaces_its_own_folder(tmp_path):
    from convsight.demo import prepare_out

    out = prepare_out(tmp_path / "d")
    (out / "old.png").write_text("x")
    assert [p.name for p in prepare_out(out).iterdir()] == [".convsight-demo"]


def test_demo_cli_writes_report(cli, tmp_path):
    out = tmp_path / "demo"
    r = cli("demo", "--out", out)
    assert r.code == 0, r.stderr
    assert "demo report:" in r.stderr and (out / "index.html").is_file()
    for png in ("scenes.png", "detections.png", "pr_curves.png", "pretrain/loss_curve.png"):
        assert (out / png).stat().st_size > 0
    rows = json.loads((out / "detection.json").read_text())
    shipped = {r["detector"]: (r["mAP@0.5"], r["scenes"]) for r in rows if "baseline" not in r["detector"]}
    baseline = {r["scenes"]: r["mAP@0.5"] for r in rows if "baseline" in r["detector"]}
    # the whole lineage ships and is shown (issue 18), the modern three well above chance
    assert set(shipped) == {"Localization", "Sliding window", "R-CNN", "Fast R-CNN", "Faster R-CNN", "YOLO", "SSD"}
    assert min(shipped[k][0] for k in ("YOLO", "SSD", "Faster R-CNN")) > 0.5
    # every shipped method beats the box-per-class prior on the same scenes (issue 18's baseline)
    assert set(baseline) == {"multi-object", "single-object"}
    assert all(m > baseline[scenes] for m, scenes in shipped.values()), (shipped, baseline)
    assert (out / "lineage.png").stat().st_size > 0
    faces = json.loads((out / "faces.json").read_text())
    # each altered portrait is recognised as its original, within the threshold
    assert [(r["query"].split(" ")[0], r["answer"]) for r in faces["identify"]] == [
        ("astronaut", "astronaut"), ("grace_hopper", "grace_hopper")]
    for png in ("faces_detected.png", "faces_chips.png", "faces_distances.png", "style_sweep.png", "style_fast_mosaic.png"):
        assert (out / png).stat().st_size > 0
    rows = json.loads((out / "evaluator.json").read_text())
    # more box noise can only cost COCO mAP; the noiseless row is limited by the dropped objects only
    assert rows[0]["mAP@[.5:.95]"] > rows[1]["mAP@[.5:.95]"] > rows[2]["mAP@[.5:.95]"]
    html = (out / "index.html").read_text()
    assert "read back identical: True" in html
