from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convsight.errors import DatasetError
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


def test_missing_classes_file(tmp_path):
    _layout(tmp_path, classes=None)
    with pytest.raises(DatasetError, match="missing classes.txt"):
        read_yolo(tmp_path)


def test_writer_requires_images_under_root(tmp_path, random_set):
    with pytest.raises(DatasetError, match="needs images under"):
        write_yolo(random_set, tmp_path / "elsewhere")
