from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.yolo_txt import read_yolo, write_yolo


def _layout(tmp_path, lines="0 0.5 0.5 0.2 0.4\n", classes="a\nb\n"):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(tmp_path / "images" / "x.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "images" / "unlabelled.png")
    (tmp_path / "labels" / "x.txt").write_text(lines)
    if classes is not None:
        (tmp_path / "classes.txt").write_text(classes)


def test_reads_normalised_cxcywh_with_sizes_from_images(tmp_path):
    _layout(tmp_path)
    ds = read_yolo(tmp_path)
    by_name = {im.path.name: im for im in ds}
    assert by_name["x.png"].boxes.tolist() == [[40.0, 15.0, 60.0, 35.0]]
    assert (by_name["x.png"].width, by_name["x.png"].height) == (100, 50)
    assert len(by_name["unlabelled.png"]) == 0


@pytest.mark.parametrize(
    "lines, message",
    [("0 0.5 0.5 0.2\n", "expected 'class cx cy w h'"), ("a 0.5 0.5 0.2 0.2\n", "not numbers"),
     ("5 0.5 0.5 0.2 0.2\n", "class 5 out of range"), ("0 0.5 0.5 -0.2 0.2\n", "negative"),
     ("0 1.5 0.5 0.2 0.2\n", "outside")],
)
def test_malformed_label_lines(tmp_path, lines, message):
    _layout(tmp_path, lines)
    with pytest.raises(DatasetError, match=message) as e:
        read_yolo(tmp_path)
    assert "x.txt" in str(e.value)


def test_without_any_names_file_classes_are_numbered_from_the_labels(tmp_path):
    _layout(tmp_path, "3 0.5 0.5 0.2 0.4\n", classes=None)
    ds = read_yolo(tmp_path)
    assert ds.class_names == ("0", "1", "2", "3")
    assert ds.provenance["class_names_from"] == "label indices (no names file)"


def test_writer_requires_images_under_root(tmp_path, random_set):
    with pytest.raises(DatasetError, match="needs images under"):
        write_yolo(random_set, tmp_path / "elsewhere")


def _img2label(image):
    # Ultralytics' img2label_paths (ultralytics/data/utils.py): the last /images/ -> /labels/, suffix .txt
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def test_writer_makes_ultralytics_layout_with_splits(tmp_path):
    root = tmp_path / "out"
    ims = []
    for split, name in (("train", "a.jpg"), ("val", "b.png")):
        path = root / "images" / split / name
        path.parent.mkdir(parents=True)
        Image.fromarray(np.zeros((50, 100, 3), np.uint8)).save(path)
        ims.append(ImageAnnotation(path, 100, 50, torch.tensor([[10.0, 5.0, 30.0, 25.0], [0, 0, 100, 50]]),
                                   torch.tensor([1, 0]), crowd=torch.tensor([False, True]), split=split))
    write_yolo(AnnotationSet(tuple(ims), ("cat", "dog")), root)
    doc = yaml.safe_load((root / "data.yaml").read_text())
    assert doc == {"path": ".", "train": "images/train", "val": "images/val", "names": {0: "cat", 1: "dog"}}
    for im in ims:
        label = Path(_img2label(im.path))
        # crowd regions are not objects: only the first box is written; 'cx cy w h' = 20/100 15/50 20/100 20/50
        assert [float(v) for v in label.read_text().split()] == [1, 0.2, 0.3, 0.2, 0.4]
    assert (root / "classes.txt").read_text() == "cat\ndog\n"
    back = read_yolo(root)
    assert back.splits == ("train", "val") and back.class_names == ("cat", "dog")


def test_polygons_are_written_back_as_polygon_lines(tmp_path):
    _layout(tmp_path, "1 0.1 0.2 0.5 0.2 0.3 0.6\n")
    ds = read_yolo(tmp_path)
    write_yolo(ds, tmp_path)
    fields = (tmp_path / "labels" / "x.txt").read_text().split()
    assert len(fields) == 7 and fields[0] == "1"
    np.testing.assert_allclose([float(v) for v in fields[1:]], [0.1, 0.2, 0.5, 0.2, 0.3, 0.6])
    assert read_yolo(tmp_path).provenance["polygon_lines"] == 1
