"""`convsight data ...` through the CLI entry point, as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from convsight.io.formats import read_dataset, write_dataset


def test_synth_200_coco_reads_back_identically_in_all_three_formats(cli, tmp_path):
    out = tmp_path / "synth"
    r = cli("data", "synth", "--format", "coco", "--n", "200", str(out), "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["images"] == 200 and doc["boxes"] > 200
    coco = read_dataset(out, "coco")
    write_dataset(coco, out, "voc")
    write_dataset(coco, out, "yolo")
    voc, yolo = read_dataset(out, "voc"), read_dataset(out, "yolo")
    assert voc.same_as(coco), voc.differences(coco)
    assert yolo.same_as(coco), yolo.differences(coco)
    assert sum(len(im) == 0 for im in coco) > 0  # images without boxes survive every format
    # convert writes a separate, complete folder in each format
    for fmt in ("voc", "yolo"):
        r = cli("data", "convert", str(out), str(tmp_path / fmt), "--to", fmt)
        assert r.code == 0, r.stderr
        assert len(read_dataset(tmp_path / fmt)) == 200


def test_synth_is_deterministic_and_refuses_non_empty_folder(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("data", "synth", "--n", "3", "--size", "64", "--ext", "png", str(tmp_path / name)).code == 0
    a, b = sorted((tmp_path / "a" / "images").iterdir()), sorted((tmp_path / "b" / "images").iterdir())
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    r = cli("data", "synth", "--n", "3", str(tmp_path / "a"))
    assert r.code == 2 and "not empty" in r.stderr and "Traceback" not in r.stderr


def test_crops_mode(cli, tmp_path):
    r = cli("data", "synth", "--mode", "crops", "--n", "4", "--size", "96", str(tmp_path / "c"), "--json")
    assert r.code == 0, r.stderr
    counts = json.loads(r.stdout)["crops"]
    assert counts["background"] > 0
    assert (tmp_path / "c" / "classes.txt").read_text().splitlines()[-1] == "background"


def test_info_and_preview(cli, tmp_path):
    assert cli("data", "synth", "--n", "4", "--size", "64", str(tmp_path / "d")).code == 0
    r = cli("data", "info", str(tmp_path / "d"), "--json")
    assert r.code == 0 and json.loads(r.stdout)["images"] == 4
    r = cli("data", "preview", str(tmp_path / "d"), "-o", str(tmp_path / "p.png"))
    assert r.code == 0 and Image.open(tmp_path / "p.png").size[0] > 64


@pytest.fixture
def hostile(tmp_path):
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 99).save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[:300])
    (tmp_path / "text.png").write_text("this is text, not a picture\n")
    Image.new("1", (30000, 30000)).save(tmp_path / "huge.png")
    return tmp_path


@pytest.mark.parametrize("name, reason", [("truncated.jpg", "truncated"), ("text.png", "not an image"), ("huge.png", "too large")])
def test_hostile_images_give_one_line_and_exit_2(cli, hostile, name, reason):
    r = cli("data", "verify", str(hostile / name))
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and name in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_broken_dataset_gives_one_line(cli, tmp_path):
    (tmp_path / "annotations.json").write_text('{"images": [], "categories": [{"id": 1}]}')
    r = cli("data", "info", str(tmp_path))
    assert r.code == 2 and "missing key 'name'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
