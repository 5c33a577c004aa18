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


# ---- info / validate / convert on datasets in other tools' shapes ----------------------------------
# Each builder cites the format's own documentation; the counts the tests expect are known by
# construction.

def _jpeg(path, w, h):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (120, 90, 60)).save(path, "JPEG")


def _coco_with_crowd(root):
    """COCO as https://cocodataset.org/#format-data ("1. Object Detection") describes it: polygon
    segmentation for iscrowd=0, uncompressed RLE ``{"counts", "size": [h, w]}`` for iscrowd=1, `area`
    the mask area, COCO's non-contiguous category ids (person 1, dog 18). 3 objects, 2 crowd regions."""
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _jpeg(root / name, 64, 48)

    def ann(aid, iid, cid, bbox, crowd=0):
        x, y, w, h = bbox
        seg = {"counts": [200, 40, 2832], "size": [48, 64]} if crowd else [[x, y, x + w, y, x + w, y + h, x, y + h]]
        return {"id": aid, "image_id": iid, "category_id": cid, "segmentation": seg, "area": w * h * 0.6,
                "bbox": bbox, "iscrowd": crowd}

    doc = {
        "info": {"description": "test", "version": "1.0", "year": 2017},
        "licenses": [{"id": 1, "name": "Attribution-NonCommercial-ShareAlike License",
                      "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/"}],
        "images": [{"id": 397133, "file_name": "a.jpg", "width": 64, "height": 48, "license": 1},
                   {"id": 37777, "file_name": "b.jpg", "width": 64, "height": 48, "license": 1},
                   {"id": 252219, "file_name": "c.jpg", "width": 64, "height": 48, "license": 1}],
        "annotations": [ann(1, 397133, 1, [2, 2, 20, 30]), ann(2, 397133, 1, [30, 4, 20, 30]),
                        ann(3, 397133, 18, [10, 20, 30, 20]), ann(4, 397133, 1, [0, 0, 64, 20], crowd=1),
                        ann(5, 252219, 1, [0, 0, 40, 40], crowd=1)],
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "animal", "id": 18, "name": "dog"}],
    }
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def _voc_object(name, box, truncated, difficult):
    return (f"<object><name>{name}</name><pose>Left</pose><truncated>{truncated}</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
            f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")


def _voc2007(root):
    """A VOCdevkit/VOC2007 tree: Annotations/<id>.xml in the devkit's shape (000001.xml of
    VOCtrainval_06-Nov-2007: folder, filename, source, owner, size, segmented, objects with
    name/pose/truncated/difficult/bndbox), JPEGImages/, ImageSets/Main/{train,val}.txt. 3 objects:
    2 truncated (000001's dog and person), 1 difficult (a train in 000002)."""
    voc = root / "VOCdevkit" / "VOC2007"
    objects = {"000001": _voc_object("dog", (48, 240, 195, 371), 1, 0) + _voc_object("person", (8, 12, 352, 498), 1, 0),
               "000002": _voc_object("train", (139, 200, 207, 301), 0, 1)}
    for stem, objs in objects.items():
        _jpeg(voc / "JPEGImages" / f"{stem}.jpg", 353, 500)
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{stem}.jpg</filename><source><database>The VOC2007 Database"
            "</database><annotation>PASCAL VOC2007</annotation><image>flickr</image><flickrid>341012865</flickrid></source>"
            "<owner><flickrid>Fried Camels</flickrid><name>Jinky the Fruit Bat</name></owner><size><width>353</width>"
            f"<height>500</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("000001\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("000002\n")
    return voc


def _ultralytics_seg(root):
    """Ultralytics layout (docs.ultralytics.com/datasets/detect/, "Ultralytics YOLO format", and
    /datasets/segment/ for `<class-index> <x1> <y1> ... <xn> <yn>` polygon lines): data.yaml with `path`,
    `train`/`val` folders and `names` as a list; images/<split>/, labels/<split>/. train/a.txt holds 3
    polygon lines and 1 box line, val/b.txt 1 box line: 5 boxes, 3 of them from polygons."""
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [person, bicycle]\n")
    labels = {"train/a": "0 0.681 0.485 0.670 0.487 0.676 0.487\n"   # the docs' 3-point example
                         "1 0.504 0.100 0.501 0.104 0.498 0.104 0.493 0.110 0.492 0.115\n"
                         "0 0.1 0.1 0.3 0.1 0.3 0.4 0.1 0.4\n"
                         "1 0.5 0.5 0.2 0.2\n",
              "val/b": "0 0.4 0.6 0.2 0.3\n"}
    for rel, text in labels.items():
        _jpeg(root / "images" / f"{rel}.jpg", 80, 60)
        (root / "labels" / f"{rel}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{rel}.txt").write_text(text)
    return root


def test_info_counts_crowd_apart_from_objects(cli, tmp_path):
    r = cli("data", "info", str(_coco_with_crowd(tmp_path / "coco")), "--json")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["format"] == "coco"
    assert (s["crowd"], s["ignored"], s["boxes"], s["annotations"]) == (2, 2, 3, 5)
    assert s["per_class"] == {"person": 2, "dog": 1}          # the 2 crowd regions are people, not counted
    assert s["per_class_ignored"] == {"person": 2, "dog": 0}
    assert s["images_without_boxes"] == 2                      # b.jpg (nothing) and c.jpg (only a crowd region)
    assert s["with_segmentation"] == 5 and s["difficult"] == 0
    r = cli("data", "info", str(tmp_path / "coco"))
    assert r.code == 0 and "2 crowd regions" in r.stdout and "3 boxes" in r.stdout, r.stdout


def test_info_voc_difficult_truncated_splits(cli, tmp_path):
    voc = _voc2007(tmp_path)
    r = cli("data", "info", str(voc), "--json")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["format"], s["boxes"], s["difficult"], s["truncated"], s["crowd"]) == ("voc", 3, 1, 2, 0)
    assert s["per_class_difficult"]["train"] == 1 and s["per_class"]["train"] == 1  # difficult objects are objects
    assert s["class_names_from"] and s["layout"]
    assert {"train", "val"} <= set(s["splits_available"])
    r = cli("data", "info", str(voc), "--split", "val", "--json")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["images"], s["boxes"], s["difficult"]) == (1, 1, 1)
    r = cli("data", "info", str(voc), "--split", "nope")
    assert r.code == 2 and "nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_info_yolo_polygon_lines_splits_and_names_source(cli, tmp_path):
    r = cli("data", "info", str(_ultralytics_seg(tmp_path / "y")), "--json")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["format"], s["images"], s["boxes"], s["polygon_lines"]) == ("yolo", 2, 5, 3)
    assert s["splits"] == {"train": 1, "val": 1}
    assert "data.yaml" in s["class_names_from"]
    assert s["per_class"] == {"person": 3, "bicycle": 2}
    r = cli("data", "info", str(tmp_path / "y"))
    assert r.code == 0 and "3 polygon lines" in r.stdout and "train 1, val 1" in r.stdout, r.stdout


def test_validate_lists_problems_and_exits_1(cli, tmp_path):
    root = _coco_with_crowd(tmp_path / "coco")
    doc = json.loads((root / "annotations.json").read_text())
    doc["images"].append({"id": 37777, "file_name": "d.jpg", "width": 64, "height": 48})  # b.jpg's id
    doc["images"].append({"id": 5, "file_name": "gone.jpg", "width": 64, "height": 48})  # no such file
    doc["annotations"].append({"id": 9, "image_id": 397133, "category_id": 5, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0})
    doc["annotations"].append({"id": 10, "image_id": 37777, "category_id": 18, "bbox": [40, 30, 40, 30], "area": 1, "iscrowd": 0})
    (root / "annotations.json").write_text(json.dumps(doc))
    _jpeg(root / "stray.jpg", 10, 10)
    r = cli("data", "validate", str(root))
    assert r.code == 1, r.stderr
    lines = r.stdout.strip().splitlines()
    assert all(": " in line and line.split(": ", 1)[0] for line in lines), lines
    text = r.stdout.lower()
    for what in ("duplicate image id 37777", "category", "outside", "stray.jpg", "gone.jpg"):
        assert what in text, (what, r.stdout)
    r = cli("data", "validate", str(root), "--json")
    assert r.code == 1
    found = json.loads(r.stdout)
    assert [f"{p['file']}: {p['reason']}" for p in found] == lines


def test_validate_voc_and_yolo_problems_exit_1(cli, tmp_path):
    voc = _voc2007(tmp_path)
    (voc / "JPEGImages" / "000002.jpg").unlink()            # val's image is gone
    r = cli("data", "validate", str(voc))
    assert r.code == 1
    missing = f"{voc / 'JPEGImages' / '000002.jpg'}: image file not found (named in {voc / 'Annotations' / '000002.xml'})"
    assert r.stdout.splitlines() == [missing], r.stdout
    assert "1 problem found in 2 images" in r.stderr
    r = cli("data", "validate", str(voc), "--split", "train")  # the missing image is in val
    assert r.code == 0 and r.stdout.strip() == "no problems found in 1 image", r.stdout + r.stderr
    yolo = _ultralytics_seg(tmp_path / "y")
    (yolo / "labels" / "val" / "b.txt").write_text("0 0.4 0.6 0.2 0.3\n7 0.5 0.5 0.1 0.1\n")  # 2 classes only
    r = cli("data", "validate", str(yolo), "--json")
    assert r.code == 1
    [found] = json.loads(r.stdout)
    assert found["file"].startswith(str(yolo / "labels" / "val" / "b.txt")) and "7" in found["reason"], found


def test_validate_clean_dataset_and_not_a_dataset(cli, tmp_path):
    assert cli("data", "synth", "--n", "4", "--size", "64", "--format", "voc", str(tmp_path / "s")).code == 0
    r = cli("data", "validate", str(tmp_path / "s"))
    assert r.code == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "no problems found in 4 images"
    r = cli("data", "validate", str(tmp_path / "s"), "--json")
    assert r.code == 0 and json.loads(r.stdout) == []
    (tmp_path / "empty").mkdir()
    r = cli("data", "validate", str(tmp_path / "empty"))
    assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_convert_says_what_the_target_cannot_hold(cli, tmp_path):
    src = _coco_with_crowd(tmp_path / "coco")
    r = cli("data", "convert", str(src), str(tmp_path / "y"), "--to", "yolo", "--json")
    assert r.code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("convsight: note: ")]
    assert any("crowd" in n for n in notes), r.stderr
    assert json.loads(r.stdout)["boxes"] == 3  # the 2 crowd regions are not boxes
    assert read_dataset(tmp_path / "y").num_boxes == 3
    r = cli("data", "convert", str(src), str(tmp_path / "v"), "--to", "voc", "--json")
    assert r.code == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("convsight: note: ")]
    assert any("segmentation" in n for n in notes), r.stderr
    assert json.loads(r.stdout)["notes"] == [n.removeprefix("convsight: note: ") for n in notes]
    r = cli("data", "convert", str(src), str(tmp_path / "c"), "--to", "coco")  # COCO holds everything
    assert r.code == 0 and "note:" not in r.stderr, r.stderr


def test_convert_one_split(cli, tmp_path):
    src = _ultralytics_seg(tmp_path / "y")
    r = cli("data", "convert", str(src), str(tmp_path / "val"), "--to", "coco", "--split", "val", "--json")
    assert r.code == 0, r.stderr
    assert (json.loads(r.stdout)["images"], json.loads(r.stdout)["boxes"]) == (1, 1)
    back = read_dataset(tmp_path / "val")
    assert [im.path.name for im in back] == ["b.jpg"]
