"""Pascal VOC: the XML conventions, errors and problems, and the layout the writer produces.

Files in other tools' own shapes: test_voc_devkit.py (devkit) and test_voc_labelimg_cvat.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
from PIL import Image

from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet, ImageAnnotation, Problem
from convsight.io.voc import VOC_CLASSES, is_voc_dataset, read_voc, write_voc

XML = """<annotation><filename>a.jpg</filename><size><width>100</width><height>50</height><depth>3</depth></size>
<object><name>widget</name><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>35</ymax></bndbox></object>
</annotation>"""


def _write(tmp_path, text, name="a.xml"):
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    (tmp_path / "Annotations" / name).write_text(text)


def _jpeg(path, w=40, h=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 120, 30)).save(path)
    return path


def test_reads_one_based_pixels_as_zero_based_xyxy(tmp_path):
    _write(tmp_path, XML)
    ds = read_voc(tmp_path)
    assert ds.class_names == ("widget",)
    assert ds.provenance["class_names_from"] == "sorted names found in the XML files"
    assert ds[0].boxes.tolist() == [[10.0, 5.0, 30.0, 35.0]]
    assert ds[0].path == tmp_path / "JPEGImages" / "a.jpg"
    assert ds[0].difficult.tolist() == [False] and ds[0].truncated.tolist() == [False]


def test_standard_names_give_the_devkit_order_and_others_sorted(tmp_path):
    _write(tmp_path, XML.replace("widget", "tvmonitor"), "a.xml")
    _write(tmp_path, XML.replace("widget", "aeroplane"), "b.xml")
    ds = read_voc(tmp_path)
    assert ds.class_names == VOC_CLASSES and len(VOC_CLASSES) == 20
    assert ds.provenance["class_names_from"] == "VOC standard 20 classes"
    assert [ds.class_names[int(im.labels[0])] for im in ds] == ["tvmonitor", "aeroplane"]
    _write(tmp_path, XML.replace("widget", "zebra"), "c.xml")  # one foreign name: sorted instead
    assert read_voc(tmp_path).class_names == ("aeroplane", "tvmonitor", "zebra")


def test_labelmap_background_is_a_class_only_when_used(tmp_path):
    # datumaro's write_label_map always puts "background" first (the segmentation background)
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\nwidget:1,2,3::\n")
    _write(tmp_path, XML)
    assert read_voc(tmp_path).class_names == ("widget",)
    _write(tmp_path, XML.replace("widget", "background"), "b.xml")
    assert read_voc(tmp_path).class_names == ("background", "widget")


@pytest.mark.parametrize(
    "text, message",
    [
        ("<annotation><size>", "not valid XML"),
        ("<notvoc/>", "expected <annotation>"),
        (XML.replace("<xmin>11</xmin>", ""), "missing <xmin>"),
        (XML.replace("<xmin>11</xmin>", "<xmin>eleven</xmin>"), "not a number"),
        (XML.replace("<xmin>11</xmin>", "<xmin>nan</xmin>"), "not a finite number"),
        (XML.replace("<bndbox>", "<box>").replace("</bndbox>", "</box>"), "has no <bndbox>"),
        (XML.replace("<object><name>", "<object><difficult>maybe</difficult><name>"), "<difficult> is not 0 or 1"),
        (XML.replace("<xmax>30</xmax>", "<xmax>5</xmax>"), "negative"),
        (XML.replace("<size><width>100</width>", "<size><width>10</width>"), "outside"),
    ],
)
def test_malformed_xml(tmp_path, text, message):
    _write(tmp_path, text)
    with pytest.raises(DatasetError, match=message) as e:
        read_voc(tmp_path)
    assert "a.xml" in str(e.value)


def test_problems_are_collected_and_bad_records_skipped(tmp_path):
    good = XML.replace("</annotation>", "<object><name>widget</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                       "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    _write(tmp_path, "<annotation><size>", "broken.xml")
    _write(tmp_path, good.replace("<xmin>11</xmin>", "<xmin>x</xmin>"), "number.xml")
    _write(tmp_path, good.replace("<name>widget</name>", "<name>gadget</name>", 1), "unknown.xml")
    _write(tmp_path, good.replace("<xmax>30</xmax>", "<xmax>300</xmax>"), "outside.xml")
    _write(tmp_path, XML.replace("<xmax>30</xmax>", "<xmax>5</xmax>"), "only_bad.xml")  # its one box is bad
    (tmp_path / "classes.txt").write_text("widget\n")
    found: list[Problem] = []
    ds = read_voc(tmp_path, problems=found)
    by_file = {p.file.rsplit("/", 1)[1]: p.reason for p in found}
    assert set(by_file) == {"broken.xml", "number.xml", "unknown.xml", "outside.xml", "only_bad.xml"}, found
    assert "not valid XML" in by_file["broken.xml"]
    assert "object 0: <xmin> is not a number" in by_file["number.xml"]
    assert "class 'gadget' is not in classes.txt" in by_file["unknown.xml"]
    assert "outside" in by_file["outside.xml"] and "negative" in by_file["only_bad.xml"]
    # broken.xml is skipped; only_bad.xml has no box left, each other file keeps its sound second box
    assert sorted(len(im) for im in ds) == [0, 1, 1, 1]
    assert all(im.boxes.tolist() == [[0.0, 0.0, 9.0, 9.0]] for im in ds if len(im))
    with pytest.raises(DatasetError, match="broken.xml: not valid XML"):
        read_voc(tmp_path)


def test_unknown_class_with_classes_txt(tmp_path):
    _write(tmp_path, XML)
    (tmp_path / "classes.txt").write_text("cat\n")
    with pytest.raises(DatasetError, match="class 'widget' is not in classes.txt"):
        read_voc(tmp_path)


def test_not_a_voc_folder(tmp_path):
    assert not is_voc_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not a VOC dataset"):
        read_voc(tmp_path)
    (tmp_path / "VOCdevkit" / "VOC2007" / "Annotations").mkdir(parents=True)
    assert is_voc_dataset(tmp_path / "VOCdevkit") and is_voc_dataset(tmp_path / "VOCdevkit" / "VOC2007")
    assert is_voc_dataset(tmp_path)  # torchvision's root, holding VOCdevkit/
    (tmp_path / "other" / "stuff" / "Annotations").mkdir(parents=True)
    assert not is_voc_dataset(tmp_path / "other")  # any sub-folder with Annotations/ is not a devkit


def _sample_set(root):
    a, b, c = (_jpeg(root / "JPEGImages" / n) for n in ("a.jpg", "b.jpg", "c.jpg"))
    ims = (
        ImageAnnotation(a, 40, 30, torch.tensor([[0.0, 0.0, 40.0, 30.0], [2.5, 3.0, 10.25, 12.0]]), torch.tensor([1, 0]),
                        difficult=torch.tensor([True, False]), truncated=torch.tensor([True, False]), split="train"),
        ImageAnnotation(b, 40, 30, torch.tensor([[5.0, 5.0, 20.0, 20.0]]), torch.tensor([1]),
                        truncated=torch.tensor([True]), split="val"),
        ImageAnnotation(c, 40, 30, torch.zeros(0, 4), torch.zeros(0), split="val"),
    )
    return AnnotationSet(ims, ("unused", "thing"))


def test_writer_produces_the_standard_layout_and_reads_back(tmp_path):
    ds = _sample_set(tmp_path)
    assert write_voc(ds, tmp_path) == tmp_path
    assert sorted(p.name for p in (tmp_path / "Annotations").iterdir()) == ["a.xml", "b.xml", "c.xml"]
    main = tmp_path / "ImageSets" / "Main"
    assert (main / "train.txt").read_text() == "a\n"
    assert (main / "val.txt").read_text() == "b\nc\n"
    assert (main / "trainval.txt").read_text() == "a\nb\nc\n"  # as the devkit has it
    assert (tmp_path / "classes.txt").read_text() == "unused\nthing\n"
    assert (tmp_path / "labelmap.txt").read_text().splitlines()[1:] == ["background:::", "unused:::", "thing:::"]
    root = ET.parse(tmp_path / "Annotations" / "a.xml").getroot()
    assert root.find("filename").text == "a.jpg" and root.find("path") is None  # image is in JPEGImages/
    objs = root.findall("object")
    assert [(o.find("difficult").text, o.find("truncated").text) for o in objs] == [("1", "1"), ("0", "0")]
    assert [objs[1].find("bndbox").find(t).text for t in ("xmin", "ymin", "xmax", "ymax")] == ["3.5", "4", "10.25", "12"]
    back = read_voc(tmp_path)
    assert back.same_as(ds), back.differences(ds)  # boxes, labels, difficult and truncated bit for bit
    assert [im.split for im in back] == ["train", "val", "val"]
    assert back.provenance["splits"] == ["train", "trainval", "val"]
    assert back.provenance["class_names_from"] == "classes.txt"
    assert [im.path.name for im in read_voc(tmp_path, split="trainval")] == ["a.jpg", "b.jpg", "c.jpg"]


def test_written_layout_is_read_by_torchvision(tmp_path):
    # torchvision.datasets.VOCDetection is an independent reader of the devkit layout:
    # ROOT/VOCdevkit/VOC2007/{ImageSets/Main/<set>.txt, JPEGImages/<id>.jpg, Annotations/<id>.xml}.
    from torchvision.datasets import VOCDetection

    voc = tmp_path / "VOCdevkit" / "VOC2007"
    ds = _sample_set(voc)
    write_voc(ds, voc)
    for image_set, expected in (("train", ds[0]), ("val", ds[1])):
        image, target = VOCDetection(str(tmp_path), year="2007", image_set=image_set)[0]
        assert image.size == (40, 30)
        ann = target["annotation"]
        assert ann["filename"] == expected.path.name
        objs = ann["object"]
        assert [o["name"] for o in objs] == [ds.class_names[k] for k in expected.labels.tolist()]
        assert [o["difficult"] for o in objs] == [str(int(d)) for d in expected.difficult.tolist()]
        assert [o["truncated"] for o in objs] == [str(int(t)) for t in expected.truncated.tolist()]
        assert float(objs[0]["bndbox"]["xmin"]) == float(expected.boxes[0, 0]) + 1  # 1-based, as the devkit


def test_writer_keeps_images_outside_jpegimages_reachable_and_split_less_sets(tmp_path):
    src = _jpeg(tmp_path / "images" / "x.png")
    crowd = ImageAnnotation(src, 40, 30, torch.tensor([[1.0, 1.0, 9.0, 9.0], [2.0, 2.0, 4.0, 4.0]]), torch.tensor([0, 0]),
                            crowd=torch.tensor([False, True]))
    ds = AnnotationSet((crowd,), ("thing",))
    write_voc(ds, tmp_path)
    root = ET.parse(tmp_path / "Annotations" / "x.xml").getroot()
    assert root.find("path").text == "images/x.png"
    # VOC has no crowd flag: a crowd region is written difficult, VOC's "neither hit nor miss"
    assert [o.find("difficult").text for o in root.findall("object")] == ["0", "1"]
    assert (tmp_path / "ImageSets" / "Main" / "default.txt").read_text() == "x\n"  # datumaro/CVAT need a list
    back = read_voc(tmp_path)
    assert back[0].path == src and back[0].split is None and back.splits == ()
    assert back[0].difficult.tolist() == [False, True]


def test_names_with_spaces_survive_the_split_files(tmp_path):
    src = _jpeg(tmp_path / "JPEGImages" / "my photo 1.jpg")
    ds = AnnotationSet((ImageAnnotation(src, 40, 30, torch.zeros(0, 4), torch.zeros(0), split="val"),), ("thing",))
    write_voc(ds, tmp_path)
    assert (tmp_path / "ImageSets" / "Main" / "val.txt").read_text() == "my photo 1\n"
    assert [(im.path, im.split) for im in read_voc(tmp_path, split="val")] == [(src, "val")]


def test_writer_refuses_two_images_with_one_stem(tmp_path):
    ims = tuple(ImageAnnotation(tmp_path / d / "x.jpg", 40, 30, torch.zeros(0, 4), torch.zeros(0)) for d in ("a", "b"))
    with pytest.raises(DatasetError, match="same VOC name x.xml"):
        write_voc(AnnotationSet(ims, ("thing",)), tmp_path / "out")
