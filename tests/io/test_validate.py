"""`validate_dataset`: every suspicious thing, each with its file and a one-line reason.

The datasets are built in the shape each tool writes (sources cited at each builder); each test plants
known problems and checks that every one of them, and nothing else, is reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from convsight.errors import DatasetError
from convsight.io.annotations import Problem
from convsight.io.validate import validate_dataset


def jpeg(path: Path, w: int, h: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 120, 150)).save(path, "JPEG")
    return path


def only(found: list[Problem], file_part: str, *words: str) -> Problem:
    """The one problem whose file contains ``file_part`` and whose reason contains every word."""
    hits = [p for p in found if file_part in p.file and all(w.lower() in p.reason.lower() for w in words)]
    assert len(hits) == 1, f"expected one problem about {file_part} {words}, got {hits} in {found}"
    return hits[0]


# ---- COCO ------------------------------------------------------------------------------------------
# Shape from https://cocodataset.org/#format-data ("1. Object Detection"): info, licenses, images with
# id/width/height/file_name/license/flickr_url/coco_url/date_captured, annotations with
# id/image_id/category_id/segmentation/area/bbox [x, y, width, height]/iscrowd, categories with
# id/name/supercategory. Category ids as in instances_val2017.json (person 1, dog 18: not 1..C).

def coco_image(iid: int, name: str, w: int, h: int) -> dict:
    return {"id": iid, "width": w, "height": h, "file_name": name, "license": 1, "flickr_url": "",
            "coco_url": f"http://images.cocodataset.org/val2017/{name}", "date_captured": "2013-11-14 16:28:13"}


def coco_ann(aid: int, iid: int, cid: int, bbox: list[float]) -> dict:
    x, y, w, h = bbox
    return {"id": aid, "image_id": iid, "category_id": cid, "bbox": bbox, "area": w * h * 0.7, "iscrowd": 0,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def coco_doc(images: list[dict], anns: list[dict]) -> dict:
    return {
        "info": {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
                 "contributor": "COCO Consortium", "date_created": "2017/09/01"},
        "licenses": [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                      "name": "Attribution-NonCommercial-ShareAlike License"}],
        "images": images, "annotations": anns,
        "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                       {"supercategory": "animal", "id": 18, "name": "dog"}],
    }


@pytest.fixture
def coco_with_problems(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.jpg", "c.jpg", "stray.jpg"):
        jpeg(tmp_path / name, 64, 48)
    images = [coco_image(1, "a.jpg", 64, 48), coco_image(2, "b.jpg", 64, 48), coco_image(2, "c.jpg", 64, 48),
              coco_image(4, "gone.jpg", 64, 48)]
    anns = [coco_ann(10, 1, 1, [4, 4, 20, 20]),
            coco_ann(11, 1, 99, [4, 4, 10, 10]),      # category 99 is not in "categories"
            coco_ann(12, 1, 18, [50, 10, 30, 20])]    # x2 = 80 > 64 + 1: outside the image
    (tmp_path / "annotations.json").write_text(json.dumps(coco_doc(images, anns)))
    return tmp_path


def test_coco_problems_each_with_file_and_reason(coco_with_problems: Path) -> None:
    found = validate_dataset(coco_with_problems)
    dup = only(found, "annotations.json", "duplicate", "image id")
    assert "2" in dup.reason
    assert "99" in only(found, "annotations.json", "categor").reason
    outside = only(found, "annotations.json", "outside")
    assert "a.jpg" in outside.file and "64x48" in outside.reason
    only(found, "gone.jpg", "not found")
    only(found, "stray.jpg", "not listed")
    assert len(found) == 5, found


def test_coco_duplicate_annotation_id_and_wrong_image_size(tmp_path: Path) -> None:
    jpeg(tmp_path / "a.jpg", 40, 30)  # the json says 64x48
    anns = [coco_ann(7, 1, 1, [1, 1, 10, 10]), coco_ann(7, 1, 18, [2, 2, 10, 10])]
    (tmp_path / "annotations.json").write_text(json.dumps(coco_doc([coco_image(1, "a.jpg", 64, 48)], anns)))
    found = validate_dataset(tmp_path / "annotations.json")
    assert "7" in only(found, "annotations.json", "duplicate annotation id").reason
    assert "40x30" in only(found, "annotations.json", "64x48").reason
    assert len(found) == 2, found


def test_roboflow_coco_split_folders(tmp_path: Path) -> None:
    # Roboflow's "COCO JSON" export (https://roboflow.com/formats/coco-json): one folder per split with
    # `_annotations.coco.json` beside the images; ids start at 0 and category 0 is the project itself
    # (supercategory "none"), its classes below it; `segmentation` is [] for boxes.
    for split, box in (("train", [10, 10, 20, 20]), ("valid", [30, 30, 40, 20])):  # valid's x2 = 70 > 64
        folder = tmp_path / split
        jpeg(folder / f"{split}_jpg.rf.0a1b.jpg", 64, 48)
        doc = {"info": {"year": "2023", "version": "1", "description": "Exported from roboflow.com"},
               "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
               "categories": [{"id": 0, "name": "hard-hats", "supercategory": "none"},
                              {"id": 1, "name": "head", "supercategory": "hard-hats"}],
               "images": [{"id": 0, "license": 1, "file_name": f"{split}_jpg.rf.0a1b.jpg", "height": 48, "width": 64,
                           "date_captured": "2023-01-01T00:00:00+00:00"}],
               "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": box, "area": box[2] * box[3],
                                "segmentation": [], "iscrowd": 0}]}
        (folder / "_annotations.coco.json").write_text(json.dumps(doc))
    jpeg(tmp_path / "train" / "unlisted.jpg", 64, 48)
    [stray] = validate_dataset(tmp_path, split="train")
    assert stray.file.endswith("unlisted.jpg") and "not listed" in stray.reason
    [outside] = validate_dataset(tmp_path, split="val")  # Roboflow's "valid" is read as "val"
    assert "valid/_annotations.coco.json" in outside.file and "outside" in outside.reason, outside
    assert len(validate_dataset(tmp_path)) == 2


# ---- YOLO (Ultralytics) ----------------------------------------------------------------------------
# Layout and label lines from https://docs.ultralytics.com/datasets/detect/ ("Ultralytics YOLO format":
# one `class x_center y_center width height` line per object, normalised; `data.yaml` with `path`,
# `train`/`val` image folders and `names` as a dict, as in coco8.yaml); labels found by replacing
# `images` with `labels` in the image path. Images without a label file are background images.

def yolo_dataset(root: Path, labels: dict[str, str]) -> Path:
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\n\nnames:\n  0: person\n  1: bicycle\n")
    for rel, text in labels.items():
        jpeg(root / "images" / f"{rel}.jpg", 80, 60)
        if text is not None:
            (root / "labels" / f"{rel}.txt").parent.mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{rel}.txt").write_text(text)
    return root


def test_yolo_class_out_of_range_and_bad_line(tmp_path: Path) -> None:
    root = yolo_dataset(tmp_path, {
        "train/a": "0 0.5 0.5 0.2 0.2\n5 0.4 0.4 0.1 0.1\n",  # only classes 0 and 1 exist
        "train/b": "1 0.5 0.5 0.2\n",                         # four fields: not a YOLO line
        "train/c": None,                                      # no label file: an empty image, fine
        "val/d": "1 0.5 0.5 0.3 0.3\n",
    })
    found = validate_dataset(root)
    assert "5" in only(found, "a.txt", "class").reason
    only(found, "b.txt", "field")
    assert not [p for p in found if "c.jpg" in p.file or "c.txt" in p.file]
    assert len(found) == 2, found


def test_yolo_boxes_outside_and_non_finite(tmp_path: Path) -> None:
    root = yolo_dataset(tmp_path, {
        "train/a": "0 1.5 0.5 0.2 0.2\n",                     # centre beyond the right edge: its only box
        "val/d": "1 0.5 0.5 0.3 0.3\n0 nan 0.5 0.2 0.2\n",    # a good box, then a non-finite one
    })
    found = validate_dataset(root)
    assert "80x60" in only(found, "a.txt", "outside").reason
    only(found, "d.txt", "finite")
    assert len(found) == 2, found


def test_yolo_image_missing_from_a_list_file_is_reported(tmp_path: Path) -> None:
    # Ultralytics: `train` may be a .txt file listing image paths (docs.ultralytics.com/datasets/detect/).
    root = yolo_dataset(tmp_path, {"train/a": "0 0.5 0.5 0.2 0.2\n", "train/b": "", "val/d": ""})
    (root / "train.txt").write_text("./images/train/a.jpg\n")
    (root / "data.yaml").write_text("path: .\ntrain: train.txt\nval: images/val\nnames: [person, bicycle]\n")
    found = validate_dataset(root)
    only(found, "b.jpg", "not listed")
    assert len(found) == 1, found


def test_exports_of_other_tools(tmp_path: Path) -> None:
    # Builders (and their sources: CVAT "YOLO 1.1", AlexeyAB darknet, Roboflow "YOLOv8 PyTorch TXT",
    # Ultralytics coco8.yaml, CVAT "Ultralytics YOLO Detection") in yolo_exports.py.
    from .yolo_exports import cvat_ultralytics_list, cvat_yolo11, darknet_alexeyab, roboflow_yolov8, ultralytics_coco8

    assert validate_dataset(roboflow_yolov8(tmp_path)) == []
    assert validate_dataset(ultralytics_coco8(tmp_path)) == []  # 000000000042.jpg has no label file: fine
    cvat = cvat_yolo11(tmp_path)
    assert validate_dataset(cvat) == []
    (cvat / "obj_train_data" / "frame_000001.txt").write_text("3 0.5 0.5 0.1 0.1\n")  # obj.names has 3 classes
    [bad] = validate_dataset(cvat)
    assert "obj_train_data/frame_000001.txt" in bad.file and "3" in bad.reason, bad
    [gone] = validate_dataset(darknet_alexeyab(tmp_path) / "data" / "obj.data")  # test.txt lists img4.jpg: not there
    assert "img4.jpg" in str(gone), gone
    [gone] = validate_dataset(cvat_ultralytics_list(tmp_path))  # train.txt lists images/train/gone.jpg
    assert "gone.jpg" in str(gone), gone


# ---- Pascal VOC ------------------------------------------------------------------------------------
# XML shape of the VOC2007 devkit's Annotations/000001.xml (VOCtrainval_06-Nov-2007.tar; the devkit
# document, "Annotation"): folder, filename, source (database/annotation/image/flickrid), owner, size,
# segmented, objects with name/pose/truncated/difficult/bndbox (1-based pixel indices).

def voc_xml(stem: str, objects: list[tuple[str, tuple[str, str, str, str], int]], w: int = 353, h: int = 500) -> str:
    objs = "".join(
        f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Left</pose>\n\t\t<truncated>1</truncated>\n"
        f"\t\t<difficult>{difficult}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{b[0]}</xmin>\n\t\t\t<ymin>{b[1]}</ymin>\n"
        f"\t\t\t<xmax>{b[2]}</xmax>\n\t\t\t<ymax>{b[3]}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for name, b, difficult in objects)
    return (f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{stem}.jpg</filename>\n\t<source>\n"
            "\t\t<database>The VOC2007 Database</database>\n\t\t<annotation>PASCAL VOC2007</annotation>\n"
            "\t\t<image>flickr</image>\n\t\t<flickrid>341012865</flickrid>\n\t</source>\n\t<owner>\n"
            "\t\t<flickrid>Fried Camels</flickrid>\n\t\t<name>Jinky the Fruit Bat</name>\n\t</owner>\n"
            f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{objs}</annotation>\n")


GOOD = [("dog", ("48", "240", "195", "371"), 0), ("person", ("8", "12", "352", "498"), 0)]  # 000001.xml's


def voc_folder(root: Path, xmls: dict[str, list], images: list[str]) -> Path:
    (root / "Annotations").mkdir(parents=True)
    for stem, objects in xmls.items():
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(stem, objects))
    for stem in images:
        jpeg(root / "JPEGImages" / f"{stem}.jpg", 353, 500)
    return root


def test_voc_box_outside_missing_image_and_image_without_xml(tmp_path: Path) -> None:
    root = voc_folder(tmp_path / "VOC2007", {
        "000001": GOOD,
        "000002": [("dog", ("48", "240", "400", "371"), 0)],  # xmax 400 > width 353 (+1 px tolerance)
        "000003": GOOD,                                       # JPEGImages/000003.jpg does not exist
        "000005": [("dog", ("nan", "240", "195", "371"), 0)],  # not a finite coordinate
        "000006": [("cat", ("101", "20", "100", "60"), 1)],   # xmin-1 == xmax: zero width
    }, images=["000001", "000002", "000004", "000005", "000006"])
    found = validate_dataset(root)
    assert "353x500" in only(found, "000002.xml", "outside").reason
    only(found, "000003.jpg", "not found")
    only(found, "000004.jpg", "xml")
    only(found, "000005.xml", "finite")
    only(found, "000006.xml", "zero")
    assert len(found) == 5, found


def test_voc_split_checks_only_that_split(tmp_path: Path) -> None:
    # VOCdevkit/VOC2007/ImageSets/Main/{train,val}.txt list image stems (the devkit's layout).
    root = voc_folder(tmp_path / "VOCdevkit" / "VOC2007", {
        "000001": GOOD, "000002": [("dog", ("48", "240", "400", "371"), 0)],
    }, images=["000001", "000002"])
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n")
    assert validate_dataset(root, split="train") == []  # 000002.jpg belongs to val: it is mentioned
    found = validate_dataset(root, split="val")
    only(found, "000002.xml", "outside")
    assert len(found) == 1, found


# ---- clean datasets and non-datasets ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_clean_synthetic_dataset_has_no_problems(tmp_path: Path, fmt: str) -> None:
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig

    ds = write_synthetic(tmp_path / "s", 5, SynthConfig(image_size=(64, 64), min_objects=1, max_objects=3), seed=3, fmt=fmt)
    assert ds.num_boxes >= 5
    assert validate_dataset(tmp_path / "s", fmt) == []


def test_not_a_dataset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no dataset"):
        validate_dataset(tmp_path)



# ---- the checks on the in-memory model, independent of any reader ------------------------------------

def test_set_problems_on_an_in_memory_set(tmp_path: Path) -> None:
    import torch

    from convsight.io.annotations import AnnotationSet, ImageAnnotation
    from convsight.io.validate import set_problems

    a, b = jpeg(tmp_path / "a.jpg", 64, 48), jpeg(tmp_path / "b.jpg", 40, 30)
    jpeg(tmp_path / "stray.jpg", 8, 8)
    (tmp_path / "notes.txt").write_text("not an image: never reported")
    nan = float("nan")
    boxes = [[0, 0, 10, 10], [60, 0, 80, 10], [5, 5, 5, 9], [nan, 1, 2, 3], [1, 1, 4, 4]]
    images = (
        ImageAnnotation(a, 64, 48, torch.tensor(boxes), torch.tensor([0, 0, 1, 0, 5]), image_id=1,
                        box_ids=torch.tensor([1, 2, 3, 4, 1])),
        ImageAnnotation(b, 64, 48, torch.zeros(0, 4), torch.zeros(0), image_id=1),   # b.jpg is 40x30
        ImageAnnotation(b, 30, 40, torch.zeros(0, 4), torch.zeros(0), image_id=1, split="val"),  # other split
        ImageAnnotation(tmp_path / "gone.jpg", 64, 48, torch.zeros(0, 4), torch.zeros(0), image_id=3),
    )
    found = set_problems(AnnotationSet(images, ("cat", "dog")), tmp_path / "annotations.json", "coco")
    only(found, "a.jpg", "box 1", "outside", "64x48")
    only(found, "a.jpg", "box 2", "zero")
    only(found, "a.jpg", "box 3", "finite")
    only(found, "a.jpg", "box 4", "label 5", "2 classes")
    only(found, "a.jpg", "duplicate annotation id 1")
    assert "a.jpg" in only(found, "a.jpg", "duplicate image id 1").reason  # names both images
    only(found, "b.jpg", "listed 2 times")
    assert "40x30" in only(found, "b.jpg", "annotated size 64x48").reason  # 30x40 (turned) is accepted
    only(found, "gone.jpg", "not found")
    only(found, "stray.jpg", "not listed")
    assert len(found) == 10, found


def test_reader_reports_are_not_repeated_and_other_splits_count_as_mentioned(tmp_path: Path) -> None:
    import torch

    from convsight.io.annotations import AnnotationSet, ImageAnnotation
    from convsight.io.validate import set_problems

    a, b = jpeg(tmp_path / "images" / "a.jpg", 64, 48), jpeg(tmp_path / "images" / "b.jpg", 64, 48)
    json_file = tmp_path / "annotations.json"
    json_file.write_text("{}")  # only its existence matters here: findings name it
    im_a = ImageAnnotation(a, 64, 48, torch.tensor([[60.0, 0, 80, 10]]), torch.tensor([0]), split="train")
    im_b = ImageAnnotation(b, 64, 48, torch.zeros(0, 4), torch.zeros(0), split="val")
    whole = AnnotationSet((im_a, im_b), ("cat",))
    train = whole.split("train")
    found = set_problems(train, tmp_path, "coco", whole=whole)
    assert [str(p) for p in found] == [f"{json_file} (a.jpg): box 0 [60.0, 0.0, 80.0, 10.0] lies outside the 64x48 image"]
    # the same finding from a reader, spelt with the image's folder, is not said again
    said = Problem(f"{json_file} (images/a.jpg)", found[0].reason)
    assert set_problems(train, tmp_path, "coco", whole=whole, reported=[said]) == []
    # without the other split, b.jpg is an image nobody mentions
    only(set_problems(train, tmp_path, "coco"), "b.jpg", "not listed")
