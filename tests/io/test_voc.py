from __future__ import annotations

import pytest
import torch

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.voc import read_voc, write_voc

XML = """<annotation><filename>a.jpg</filename><size><width>100</width><height>50</height><depth>3</depth></size>
<object><name>dog</name><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>35</ymax></bndbox></object>
</annotation>"""


def _write(tmp_path, text, name="a.xml"):
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    (tmp_path / "Annotations" / name).write_text(text)


def test_reads_one_based_pixels_as_zero_based_xyxy(tmp_path):
    _write(tmp_path, XML)
    ds = read_voc(tmp_path)
    assert ds.class_names == ("dog",)
    assert ds[0].boxes.tolist() == [[10.0, 5.0, 30.0, 35.0]]
    assert ds[0].path == tmp_path / "JPEGImages" / "a.jpg"


def test_writes_classes_and_keeps_empty_images(tmp_path):
    ims = (ImageAnnotation(tmp_path / "images" / "x.png", 40, 30, torch.tensor([[0.0, 0.0, 40.0, 30.0]]), torch.tensor([1])),
           ImageAnnotation(tmp_path / "images" / "y.png", 40, 30, torch.zeros(0, 4), torch.zeros(0)))
    ds = AnnotationSet(ims, ("unused", "thing"))
    write_voc(ds, tmp_path)
    text = (tmp_path / "Annotations" / "images__x.xml").read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>40</xmax>" in text
    back = read_voc(tmp_path)
    assert back.same_as(ds) and back.class_names == ("unused", "thing")


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotation><size>", "not valid XML"),
        ("<notvoc/>", "expected <annotation>"),
        (XML.replace("<xmin>11</xmin>", ""), "missing <xmin>"),
        (XML.replace("<xmin>11</xmin>", "<xmin>eleven</xmin>"), "not a number"),
        (XML.replace("<xmax>30</xmax>", "<xmax>5</xmax>"), "negative"),
        (XML.replace("<size><width>100</width>", "<size><width>10</width>"), "outside"),
    ],
)
def test_malformed_xml(tmp_path, text, message):
    _write(tmp_path, text)
    with pytest.raises(DatasetError, match=message) as e:
        read_voc(tmp_path)
    assert "a.xml" in str(e.value)


def test_unknown_class_with_classes_txt(tmp_path):
    _write(tmp_path, XML)
    (tmp_path / "classes.txt").write_text("cat\n")
    with pytest.raises(DatasetError, match="class 'dog' is not in"):
        read_voc(tmp_path)


def test_not_a_voc_folder(tmp_path):
    with pytest.raises(DatasetError, match="not a VOC dataset"):
        read_voc(tmp_path)
