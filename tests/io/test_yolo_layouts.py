"""YOLO datasets as Ultralytics, Roboflow, CVAT and darknet lay them out (builders in yolo_exports.py,
each citing the tool's documentation or a public export)."""

from __future__ import annotations

import numpy as np
import pytest

from convsight.errors import DatasetError
from convsight.io.annotations import Problem
from convsight.io.formats import detect_format, read_dataset
from convsight.io.yolo_txt import read_yolo

from .yolo_exports import (
    cvat_ultralytics_list,
    cvat_yolo11,
    darknet_alexeyab,
    image,
    roboflow_yolov8,
    text,
    ultralytics_coco8,
)


def _by_name(ds):
    return {im.path.name: im for im in ds}


def test_ultralytics_coco8_yaml_with_names_dict(tmp_path):
    yaml_file = ultralytics_coco8(tmp_path)
    assert detect_format(yaml_file) == "yolo"
    ds = read_dataset(yaml_file)
    assert ds.class_names == ("person", "bicycle", "car", "motorcycle")
    assert ds.provenance["class_names_from"] == "coco8.yaml names"
    assert ds.provenance["layout"] == "ultralytics" and ds.provenance["polygon_lines"] == 0
    assert ds.splits == ("train", "val")
    im = _by_name(ds)
    assert im["000000000009.jpg"].split == "train" and im["000000000036.jpg"].split == "val"
    # 200x100 image: '0 0.5 0.5 0.5 0.5' is x 50..150, y 25..75; '2 0.25 0.25 0.1 0.1' is 40..60 / 20..30
    assert im["000000000009.jpg"].boxes.tolist() == [[50.0, 25.0, 150.0, 75.0], [40.0, 20.0, 60.0, 30.0]]
    assert im["000000000009.jpg"].labels.tolist() == [0, 2]
    assert len(im["000000000042.jpg"]) == 0  # background image: no label file
    val = read_dataset(yaml_file, split="val")
    assert sorted(_by_name(val)) == ["000000000036.jpg", "000000000042.jpg"]
    with pytest.raises(DatasetError, match="no split 'test'; splits: train, val"):
        read_dataset(yaml_file, split="test")


def test_ultralytics_list_file_and_names_list_with_missing_image_as_problem(tmp_path):
    root = cvat_ultralytics_list(tmp_path)
    with pytest.raises(DatasetError, match="gone.jpg, which does not exist"):
        read_dataset(root)
    problems: list[Problem] = []
    ds = read_dataset(root, problems=problems)
    assert [p.reason for p in problems] == ["lists images/train/gone.jpg, which does not exist"]
    assert problems[0].file.endswith("train.txt")
    assert ds.class_names == ("cat", "dog") and ds.provenance["class_names_from"] == "data.yaml names"
    assert {im.path.name: im.split for im in ds} == {"image1.jpg": "train", "image2.jpg": "train", "image3.jpg": "val"}


def test_segmentation_lines_become_their_bounding_box(tmp_path):
    # The two lines of docs.ultralytics.com/datasets/segment/ ("Ultralytics YOLO format"): a 3-point and
    # a 5-point polygon, mixed with an ordinary box line.
    root = tmp_path / "seg"
    image(root / "images" / "a.jpg", (1000, 500))
    text(root / "labels" / "a.txt", "0 0.681 0.485 0.670 0.487 0.676 0.487\n"
         "1 0.504 0.000 0.501 0.004 0.498 0.004 0.493 0.010 0.492 0.0104\n")
    text(root / "classes.txt", "person\ncar\n")
    ds = read_yolo(root)
    assert ds.provenance["polygon_lines"] == 2
    (im,) = ds
    expected = [[670.0, 242.5, 681.0, 243.5], [492.0, 0.0, 504.0, 5.2]]  # min/max of x*1000, y*500
    np.testing.assert_allclose(im.boxes.numpy(), expected, atol=1e-4)
    assert im.segmentations[0] == [[pytest.approx(v) for v in (681.0, 242.5, 670.0, 243.5, 676.0, 243.5)]]
    assert float(im.areas[0]) == pytest.approx(0.5 * abs((670 - 681) * (243.5 - 242.5) - (676 - 681) * (243.5 - 242.5)))


def test_six_fields_is_a_predictions_file(tmp_path):
    root = tmp_path / "pred"
    image(root / "images" / "a.jpg")
    text(root / "labels" / "a.txt", "0 0.5 0.5 0.2 0.2 0.93\n")
    with pytest.raises(DatasetError, match=r"a.txt:1: 6 fields look like a predictions file"):
        read_yolo(root)


def test_roboflow_export_as_is(tmp_path):
    root = roboflow_yolov8(tmp_path)
    assert detect_format(root) == "yolo"
    ds = read_dataset(root)
    assert ds.provenance["layout"] == "roboflow"
    assert ds.class_names == ("head", "helmet", "person")
    assert ds.splits == ("train", "val", "test")  # Roboflow's 'valid' is read as 'val'
    im = _by_name(ds)
    # 250x233 image; Roboflow's example line: cx 0.617*250, w 0.114*250, cy 0.35944*233, h 0.17382*233
    np.testing.assert_allclose(im["img0_jpg.rf.0f3e9.jpg"].boxes.numpy(), [[140.0, 63.5, 168.5, 104.0]], atol=1e-4)
    assert im["img1_jpg.rf.1f3e9.jpg"].split == "val"
    assert len(im["img2_jpg.rf.2f3e9.jpg"]) == 0 and im["img2_jpg.rf.2f3e9.jpg"].split == "test"
    assert len(read_dataset(root, split="valid")) == len(read_dataset(root, split="val")) == 1


def test_roboflow_split_folders_without_data_yaml_number_the_classes(tmp_path):
    root = roboflow_yolov8(tmp_path)
    (root / "data.yaml").unlink()
    ds = read_dataset(root)
    assert ds.splits == ("test", "train", "val")
    assert ds.class_names == ("0", "1", "2")  # highest label used is 2
    assert ds.provenance["class_names_from"] == "label indices (no names file)"


def test_cvat_yolo_1_1_export(tmp_path):
    root = cvat_yolo11(tmp_path)
    assert detect_format(root) == "yolo"
    ds = read_dataset(root)
    assert ds.provenance["layout"] == "darknet" and ds.provenance["class_names_from"] == "obj.names"
    assert ds.class_names == ("cat", "dog", "airplane")
    im = _by_name(ds)
    assert {n: i.split for n, i in im.items()} == {"frame_000000.jpg": "train", "frame_000001.jpg": "train",
                                                    "frame_000002.jpg": "val"}
    # CVAT's example lines on a 200x100 image: '1 0.3 0.8 0.1 0.3' -> x 50..70, y 65..95;
    # '2 0.7 0.2 0.3 0.1' -> x 110..170, y 15..25
    np.testing.assert_allclose(im["frame_000000.jpg"].boxes.numpy(), [[50.0, 65.0, 70.0, 95.0], [110.0, 15.0, 170.0, 25.0]], atol=1e-4)
    assert im["frame_000000.jpg"].labels.tolist() == [1, 2]
    assert len(read_dataset(root, split="val")) == 1


def test_cvat_export_without_obj_data_still_reads_its_subset_folders(tmp_path):
    root = cvat_yolo11(tmp_path)
    (root / "obj.data").unlink()
    ds = read_dataset(root)
    assert ds.class_names == ("cat", "dog", "airplane") and set(ds.splits) == {"train", "val"}


def test_darknet_obj_data_with_missing_listed_image(tmp_path):
    darknet = darknet_alexeyab(tmp_path)
    data = darknet / "data"
    for path in (data, data / "obj.data"):
        assert detect_format(path) == "yolo"
        problems: list[Problem] = []
        ds = read_dataset(path, problems=problems)
        assert [p.reason for p in problems] == ["lists data/obj/img4.jpg, which does not exist"]
        assert ds.class_names == ("bird", "car") and ds.provenance["class_names_from"] == "obj.names"
        assert {im.path.name: im.split for im in ds} == {"img1.jpg": "train", "img2.jpg": "train", "img3.jpg": "val"}
    with pytest.raises(DatasetError, match="img4.jpg, which does not exist"):
        read_dataset(data)


def test_obj_data_class_count_must_match_names(tmp_path):
    darknet = darknet_alexeyab(tmp_path)
    text(darknet / "data" / "obj.data", "classes= 3\ntrain  = data/train.txt\nnames = data/obj.names\n")
    with pytest.raises(DatasetError, match="classes = 3 but obj.names has 2 names"):
        read_dataset(darknet / "data")


@pytest.mark.parametrize("names, message", [
    ("names:\n  0: a\n  2: b\n", "keys must be 0..1"),
    ("nc: 3\nnames: [a, b]\n", "nc: 3 but 2 names"),
    ("names: 7\n", "must be a list"),
])
def test_bad_data_yaml_names(tmp_path, names, message):
    image(tmp_path / "images" / "a.jpg")
    text(tmp_path / "labels" / "a.txt", "")
    text(tmp_path / "data.yaml", "train: images\nval: images\n" + names)
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path)


def test_missing_split_folder_is_an_error_or_a_problem(tmp_path):
    image(tmp_path / "images" / "train" / "a.jpg")
    text(tmp_path / "data.yaml", "path: .\ntrain: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DatasetError, match="val: 'images/val' not found"):
        read_dataset(tmp_path)
    problems: list[Problem] = []
    assert len(read_dataset(tmp_path, problems=problems)) == 1
    assert len(problems) == 1 and problems[0].file.endswith("data.yaml")


def test_problems_collect_bad_lines_and_keep_the_good_ones(tmp_path):
    image(tmp_path / "images" / "a.jpg")
    text(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\nx 1 2 3 4\n0 1.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    text(tmp_path / "classes.txt", "a\n")
    problems: list[Problem] = []
    (im,) = read_yolo(tmp_path, problems=problems)
    assert len(im) == 1 and im.boxes.tolist() == [[80.0, 40.0, 120.0, 60.0]]
    lines = sorted(p.file.rsplit(":", 1)[1] for p in problems)
    assert lines == ["2", "3", "4", "5"]
    assert any("class 7 out of range" in p.reason for p in problems)
    assert any("outside" in p.reason for p in problems)


def test_one_split_folder_of_a_roboflow_export_takes_the_export_names(tmp_path):
    root = roboflow_yolov8(tmp_path)
    ds = read_dataset(root / "valid")
    assert ds.class_names == ("head", "helmet", "person")
    assert ds.provenance["class_names_from"] == "../data.yaml names"
    assert len(ds) == 1 and ds[0].labels.tolist() == [1]


def test_same_images_in_every_split_means_no_splits(tmp_path):
    # Ultralytics' coco128.yaml: train and val are both images/train2017
    image(tmp_path / "images" / "train2017" / "000000000009.jpg")
    text(tmp_path / "labels" / "train2017" / "000000000009.txt", "0 0.5 0.5 0.5 0.5\n")
    text(tmp_path / "data.yaml", "path: .\ntrain: images/train2017\nval: images/train2017\nnames: {0: person}\n")
    ds = read_dataset(tmp_path)
    assert len(ds) == 1 and ds.splits == ()


def test_data_yaml_written_on_colab_with_absolute_paths(tmp_path):
    # The roboflow pip package rewrites data.yaml on download with absolute paths (roboflow-python,
    # roboflow/core/version.py, Version.__reformat_yaml: `location + content["train"].lstrip("..")`),
    # e.g. /content/datasets/... on Colab; copied elsewhere, the tail below the yaml's folder exists.
    root = roboflow_yolov8(tmp_path)
    text(root / "data.yaml", "train: /content/datasets/Hard-Hats-1/train/images\n"
         "val: /content/datasets/Hard-Hats-1/valid/images\nnc: 3\nnames: ['head', 'helmet', 'person']\n")
    ds = read_dataset(root)
    assert ds.splits == ("train", "val") and len(ds) == 3


def test_pjreddie_darknet_voc_labels_folder(tmp_path):
    # pjreddie.com/darknet/yolo/ "Training YOLO on VOC": scripts/voc_label.py writes
    # VOCdevkit/VOC2007/labels/<id>.txt beside JPEGImages/ and 2007_train.txt with absolute image paths;
    # cfg/voc.data names them (classes= 20, train = <path>/train.txt, names = data/voc.names).
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    jpg = image(voc / "JPEGImages" / "000005.jpg", (500, 375))
    text(voc / "labels" / "000005.txt", "8 0.587 0.733 0.122 0.341\n")
    text(tmp_path / "2007_train.txt", f"{jpg}\n")
    names = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    text(tmp_path / "data" / "voc.names", "\n".join(names) + "\n")
    cfg = text(tmp_path / "voc.data", f"classes= 20\ntrain  = {tmp_path}/2007_train.txt\nnames = data/voc.names\n"
               "backup = backup\n")
    ds = read_dataset(cfg)
    assert ds.class_names[8] == "chair" and ds.provenance["class_names_from"] == "voc.names"
    assert [im.labels.tolist() for im in ds] == [[8]]
