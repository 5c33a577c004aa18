"""COCO split layouts, and conversions between other tools' layouts that keep ids, splits and names
and say what the target cannot hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from convsight.io.formats import convert_dataset, detect_format, read_dataset

from .yolo_exports import cvat_yolo11, image, roboflow_yolov8, text

# COCO's own layout (cocodataset.org/#format-data and the 2017 download: annotations/instances_val2017.json,
# images in val2017/): non-contiguous category ids (COCO skips ids), ids that are the file stems, info and
# licenses, a crowd region (RLE) and a polygon segmentation.
INFO = {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
        "contributor": "COCO Consortium", "date_created": "2017/09/01"}
LICENSES = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
             "name": "Attribution-NonCommercial-ShareAlike License"}]
CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person"},
              {"supercategory": "vehicle", "id": 3, "name": "car"},
              {"supercategory": "animal", "id": 18, "name": "dog"}]


def _coco_split(root: Path, split: str, images: list[tuple[int, tuple[int, int]]], anns: list[dict],
                image_folder: Path | None = None) -> None:
    folder = image_folder or root / split
    for iid, size in images:
        image(folder / f"{iid:012d}.jpg", size)
    doc = {"info": INFO, "licenses": LICENSES,
           "images": [{"license": 1, "file_name": f"{iid:012d}.jpg", "height": h, "width": w, "id": iid}
                      for iid, (w, h) in images],
           "annotations": anns, "categories": CATEGORIES}
    text(root / "annotations" / f"instances_{split}.json", json.dumps(doc))


def coco2017(root: Path, images_under: str = "") -> Path:
    base = root / images_under if images_under else root
    _coco_split(root, "train2017", [(139, (200, 100)), (285, (200, 100))], [
        {"id": 1, "image_id": 139, "category_id": 18, "bbox": [10.0, 20.0, 30.0, 40.0], "area": 900.0, "iscrowd": 0,
         "segmentation": [[10.0, 20.0, 40.0, 20.0, 40.0, 60.0, 10.0, 60.0]]},
        {"id": 2, "image_id": 139, "category_id": 1, "bbox": [100.0, 10.0, 50.0, 50.0], "area": 2000.0, "iscrowd": 1,
         "segmentation": {"counts": [0, 10, 90], "size": [100, 200]}},
        {"id": 3, "image_id": 285, "category_id": 3, "bbox": [0.0, 0.0, 200.0, 100.0], "area": 20000.0, "iscrowd": 0,
         "segmentation": [[0.0, 0.0, 200.0, 0.0, 200.0, 100.0, 0.0, 100.0]]},
    ], base / "train2017" if images_under else None)
    _coco_split(root, "val2017", [(632, (100, 50))], [
        {"id": 4, "image_id": 632, "category_id": 1, "bbox": [5.0, 5.0, 20.0, 10.0], "area": 200.0, "iscrowd": 0,
         "segmentation": [[5.0, 5.0, 25.0, 5.0, 25.0, 15.0]]},
    ], base / "val2017" if images_under else None)
    return root


def _img2label(path: Path) -> Path:
    # Ultralytics' img2label_paths (ultralytics/data/utils.py), written out independently of convsight
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(path).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def _boxes_by_name(ds):
    return {im.path.name: (im.split, im.boxes.numpy(), [ds.class_names[k] for k in im.labels.tolist()]) for im in ds}


def _same_boxes(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], name
        assert np.array_equal(a[name][1], b[name][1]), (name, a[name][1], b[name][1])
        assert a[name][2] == b[name][2], name


@pytest.mark.parametrize("images_under", ["", "images"])
def test_coco_instances_layout_reads_splits_and_finds_images(tmp_path, images_under):
    root = coco2017(tmp_path / "coco", images_under)
    assert detect_format(root) == "coco"
    ds = read_dataset(root)
    assert ds.splits == ("train2017", "val2017")
    assert ds.class_names == ("person", "car", "dog")  # label order = category id order
    assert all(im.path.is_file() for im in ds)
    val = read_dataset(root, split="val2017")
    assert [im.path.name for im in val] == ["000000000632.jpg"] and val[0].split == "val2017"
    alone = read_dataset(root / "annotations" / "instances_val2017.json")
    assert alone[0].path.is_file() and alone[0].split is None


def test_roboflow_coco_split_folders(tmp_path):
    # Roboflow's "COCO JSON" export: <split>/_annotations.coco.json with the images beside it
    # (https://roboflow.com/formats/coco-json); its 'valid' folder is read as split 'val'.
    root = tmp_path / "rf_coco"
    for split, iid in (("train", 0), ("valid", 0), ("test", 0)):
        image(root / split / f"{split}_jpg.rf.1.jpg")
        doc = {"images": [{"id": iid, "license": 1, "file_name": f"{split}_jpg.rf.1.jpg", "height": 100, "width": 200}],
               "annotations": [{"id": 0, "image_id": iid, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12,
                                "segmentation": [], "iscrowd": 0}],
               "categories": [{"id": 0, "name": "hats", "supercategory": "none"},
                              {"id": 1, "name": "helmet", "supercategory": "hats"}]}
        text(root / split / "_annotations.coco.json", json.dumps(doc))
    assert detect_format(root) == "coco"
    ds = read_dataset(root)
    assert sorted(ds.splits) == ["test", "train", "val"] and len(ds) == 3
    assert len(read_dataset(root, split="valid")) == 1


def test_yolo_to_coco_to_yolo_keeps_boxes_splits_and_names(tmp_path):
    src = roboflow_yolov8(tmp_path)
    original = read_dataset(src)
    convert_dataset(src, tmp_path / "coco", "coco")
    coco = tmp_path / "coco"
    assert sorted(p.name for p in (coco / "annotations").iterdir()) == [
        "instances_test.json", "instances_train.json", "instances_val.json"]
    doc = json.loads((coco / "annotations" / "instances_val.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["img1_jpg.rf.1f3e9.jpg"]  # bare name, as COCO's own files
    assert (coco / "images" / "val" / "img1_jpg.rf.1f3e9.jpg").is_file()
    assert [c["name"] for c in doc["categories"]] == ["head", "helmet", "person"]
    back = read_dataset(coco)
    _same_boxes(_boxes_by_name(back), _boxes_by_name(original))

    ds2, _ = convert_dataset(coco, tmp_path / "yolo", "yolo")
    yolo = tmp_path / "yolo"
    data = yaml.safe_load((yolo / "data.yaml").read_text())
    assert data == {"path": ".", "train": "images/train", "val": "images/val", "test": "images/test",
                    "names": {0: "head", 1: "helmet", 2: "person"}}
    for im in ds2:
        assert im.path.parent == yolo / "images" / im.split
        assert _img2label(im.path).is_file()
    _same_boxes(_boxes_by_name(read_dataset(yolo)), _boxes_by_name(original))


def test_yolo_to_voc_to_yolo_standard_layout(tmp_path):
    src = cvat_yolo11(tmp_path)
    original = read_dataset(src)
    convert_dataset(src, tmp_path / "voc", "voc")
    voc = tmp_path / "voc"
    assert sorted(p.name for p in (voc / "JPEGImages").iterdir()) == ["frame_000000.jpg", "frame_000001.jpg",
                                                                      "frame_000002.jpg"]
    assert sorted(p.name for p in (voc / "Annotations").glob("*.xml")) == ["frame_000000.xml", "frame_000001.xml",
                                                                           "frame_000002.xml"]
    sets = voc / "ImageSets" / "Main"
    assert (sets / "train.txt").read_text().split() == ["frame_000000", "frame_000001"]
    assert (sets / "val.txt").read_text().split() == ["frame_000002"]
    assert detect_format(voc) == "voc"
    _same_boxes(_boxes_by_name(read_dataset(voc)), _boxes_by_name(original))
    convert_dataset(voc, tmp_path / "yolo", "yolo")
    back = read_dataset(tmp_path / "yolo")
    assert back.class_names == ("cat", "dog", "airplane")
    assert (tmp_path / "yolo" / "labels" / "train" / "frame_000000.txt").is_file()
    _same_boxes(_boxes_by_name(back), _boxes_by_name(original))


def test_coco_to_yolo_says_what_it_cannot_keep_and_coco_again_recovers_ids(tmp_path):
    root = coco2017(tmp_path / "coco")
    _, notes = convert_dataset(root, tmp_path / "yolo", "yolo")
    joined = "\n".join(notes)
    assert "1 crowd/ignored regions not written" in joined
    assert "3 image ids and 4 annotation ids not kept" in joined
    assert "category ids 1, 3, 18" in joined
    assert "info/licenses: not kept" in joined
    assert all("\n" not in n for n in notes)
    # the crowd region of image 139 is not in its label file; dog (id 18) is class 2, the 3rd name
    lines = (tmp_path / "yolo" / "labels" / "train2017" / "000000000139.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["2"]
    # the polygons match their boxes, so they are written as Ultralytics polygon lines and the boxes come back
    yolo = read_dataset(tmp_path / "yolo")
    assert yolo.provenance["polygon_lines"] == 3
    assert {im.path.name: im.boxes.tolist() for im in yolo}["000000000139.jpg"] == [[10.0, 20.0, 40.0, 60.0]]
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["train"] == "images/train2017" and data["val"] == "images/val2017"  # as Ultralytics' coco.yaml
    assert data["names"] == {0: "person", 1: "car", 2: "dog"}
    # back to COCO: the numeric file stems give the image ids back (COCO's own naming)
    convert_dataset(tmp_path / "yolo", tmp_path / "coco2", "coco")
    ids = {}
    for f in (tmp_path / "coco2" / "annotations").glob("instances_*.json"):
        ids.update({im["file_name"]: im["id"] for im in json.loads(f.read_text())["images"]})
    assert ids == {"000000000139.jpg": 139, "000000000285.jpg": 285, "000000000632.jpg": 632}


def test_coco_to_coco_keeps_ids_splits_and_info(tmp_path):
    root = coco2017(tmp_path / "coco")
    _, notes = convert_dataset(root, tmp_path / "again", "coco")
    assert notes == []
    src = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    out = json.loads((tmp_path / "again" / "annotations" / "instances_train2017.json").read_text())
    assert sorted(c["id"] for c in out["categories"]) == [1, 3, 18]
    assert sorted(im["id"] for im in out["images"]) == [139, 285]
    assert sorted((a["image_id"], a["category_id"]) for a in out["annotations"]) == \
        sorted((a["image_id"], a["category_id"]) for a in src["annotations"])
    assert out.get("info") == INFO and out.get("licenses") == LICENSES


def test_same_file_name_in_every_split_never_collides(tmp_path):
    src = roboflow_yolov8(tmp_path, same_name_in_every_split=True)
    ds, notes = convert_dataset(src, tmp_path / "yolo", "yolo")
    assert not any("renamed" in n for n in notes)  # one folder per split: no clash
    assert len({im.path for im in ds}) == 4
    ds, notes = convert_dataset(src, tmp_path / "voc", "voc")
    assert len({im.path.stem for im in ds}) == 4  # VOC ids are stems: one folder for all splits
    (note,) = [n for n in notes if "renamed" in n]
    assert note.startswith("2 images renamed")
    assert len(list((tmp_path / "voc" / "Annotations").glob("*.xml"))) == 4
    assert len(read_dataset(tmp_path / "voc")) == 4


def test_convert_one_split_only(tmp_path):
    src = roboflow_yolov8(tmp_path)
    ds, _ = convert_dataset(src, tmp_path / "val", "coco", split="val")
    assert [im.split for im in ds] == ["val"]
    assert [p.name for p in (tmp_path / "val" / "annotations").iterdir()] == ["instances_val.json"]


def test_voc_difficult_objects_into_yolo_and_coco(tmp_path):
    # A VOC2007-style annotation (VOCdevkit devkit_doc, "Annotation": <difficult>1</difficult>)
    root = tmp_path / "VOC2007"
    image(root / "JPEGImages" / "000005.jpg", (500, 375))
    text(root / "Annotations" / "000005.xml", """<annotation>
    <folder>VOC2007</folder><filename>000005.jpg</filename>
    <size><width>500</width><height>375</height><depth>3</depth></size><segmented>0</segmented>
    <object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
        <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
    <object><name>chair</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
        <bndbox><xmin>5</xmin><ymin>244</ymin><xmax>67</xmax><ymax>374</ymax></bndbox></object>
</annotation>
""")
    text(root / "ImageSets" / "Main" / "trainval.txt", "000005\n")
    _, notes = convert_dataset(root, tmp_path / "yolo", "yolo")
    assert any("1 difficult objects not written" in n for n in notes)
    labels = list((tmp_path / "yolo" / "labels").rglob("000005.txt"))
    assert len(labels) == 1 and len(labels[0].read_text().splitlines()) == 1
    _, notes = convert_dataset(root, tmp_path / "coco", "coco")
    assert any("1 difficult objects written as ordinary objects" in n for n in notes)


def test_coco_crowd_regions_become_voc_difficult_objects(tmp_path):
    root = coco2017(tmp_path / "coco")
    _, notes = convert_dataset(root, tmp_path / "voc", "voc")
    assert any(n.startswith("VOC has no crowd flag: 1 crowd/ignored regions written as difficult") for n in notes)
    assert any("4 segmentations dropped" in n for n in notes)
    by_name = {im.path.name: im for im in read_dataset(tmp_path / "voc")}
    im = by_name["000000000139.jpg"]
    assert im.labels.tolist() == [2, 0] and im.difficult.tolist() == [False, True]
    assert {i.split for i in by_name.values()} == {"train2017", "val2017"}


def test_a_lone_json_beside_a_yolo_dataset_does_not_make_it_coco(tmp_path):
    # datumaro/CVAT may put dataset_meta.json at the root of a YOLO export (datumaro docs, yolo.md)
    root = cvat_yolo11(tmp_path)
    text(root / "dataset_meta.json", '{"label_map": {"0": "cat"}}')
    assert detect_format(root) == "yolo"
