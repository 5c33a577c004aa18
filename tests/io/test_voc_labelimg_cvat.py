"""Pascal VOC files as labelImg and CVAT write them (sources cited per sample)."""

from __future__ import annotations

import pytest
from PIL import Image

from convsight.errors import DatasetError
from convsight.io.annotations import Problem
from convsight.io.voc import read_voc, write_voc


def _jpeg(path, w, h):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (200, 40, 40)).save(path, quality=50)
    return path


# labelImg's PascalVocWriter (HumanSignal/labelImg, libs/pascal_voc_io.py): folder, filename, the absolute
# <path> of the machine it ran on, source/database "Unknown", size, segmented, objects with
# pose "Unspecified", truncated, difficult, bndbox; <annotation verified="yes"> once checked. Content
# from the repo's own test_images/C1_P01_N1_S2_1.xml (first two objects).
LABELIMG = """<annotation verified="yes">
\t<folder>test_images</folder>
\t<filename>C1_P01_N1_S2_1.JPG</filename>
\t<path>{path}</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>1363</width>
\t\t<height>2188</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>pack</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>13</xmin>
\t\t\t<ymin>875</ymin>
\t\t\t<xmax>275</xmax>
\t\t\t<ymax>1249</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>pack</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>1</difficult>
\t\t<bndbox>
\t\t\t<xmin>290</xmin>
\t\t\t<ymin>898</ymin>
\t\t\t<xmax>532</xmax>
\t\t\t<ymax>1262</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""
FOREIGN_PATHS = ["/home/andrey/work/labelImg/test_images/C1_P01_N1_S2_1.JPG", r"D:\labelImg\test_images\C1_P01_N1_S2_1.JPG"]


@pytest.mark.parametrize("foreign", FOREIGN_PATHS)
def test_labelimg_foreign_path_falls_back_to_jpegimages_then_beside_the_xml(tmp_path, foreign):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "C1_P01_N1_S2_1.xml").write_text(LABELIMG.format(path=foreign))
    beside = _jpeg(tmp_path / "Annotations" / "C1_P01_N1_S2_1.JPG", 1363, 2188)  # labelImg's default: next to it
    ds = read_voc(tmp_path)
    assert ds[0].path == beside
    standard = _jpeg(tmp_path / "JPEGImages" / "C1_P01_N1_S2_1.JPG", 1363, 2188)
    ds = read_voc(tmp_path)
    assert ds[0].path == standard
    assert ds.class_names == ("pack",) and ds.provenance["class_names_from"] == "sorted names found in the XML files"
    assert ds[0].boxes.tolist() == [[12.0, 874.0, 275.0, 1249.0], [289.0, 897.0, 532.0, 1262.0]]
    assert ds[0].difficult.tolist() == [False, True]


def test_a_path_that_exists_here_is_followed(tmp_path):
    elsewhere = _jpeg(tmp_path / "photos" / "C1_P01_N1_S2_1.JPG", 1363, 2188)
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    (tmp_path / "voc" / "Annotations" / "a.xml").write_text(LABELIMG.format(path=elsewhere))
    assert read_voc(tmp_path / "voc")[0].path == elsewhere


def test_missing_size_is_read_from_the_image_and_missing_image_names_every_place_tried(tmp_path):
    no_size = LABELIMG.format(path=FOREIGN_PATHS[1]).replace("<width>1363</width>", "").replace("<height>2188</height>", "")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "C1_P01_N1_S2_1.xml").write_text(no_size)
    with pytest.raises(DatasetError, match="no <size>, and no image") as e:
        read_voc(tmp_path)
    for place in (FOREIGN_PATHS[1], "JPEGImages/C1_P01_N1_S2_1.JPG", "Annotations/C1_P01_N1_S2_1.JPG"):
        assert place in str(e.value)
    _jpeg(tmp_path / "JPEGImages" / "C1_P01_N1_S2_1.JPG", 1363, 2188)
    im = read_voc(tmp_path)[0]
    assert (im.width, im.height) == (1363, 2188)
    zero = no_size.replace("<size>", "<size><width>0</width><height>0</height>")  # some exporters write 0
    (tmp_path / "Annotations" / "C1_P01_N1_S2_1.xml").write_text(zero)
    assert (read_voc(tmp_path)[0].width, read_voc(tmp_path)[0].height) == (1363, 2188)


# CVAT's "PASCAL VOC 1.1" export (CVAT docs, "Pascal VOC" format page: JPEGImages/, Annotations/,
# ImageSets/Main/default.txt, labelmap.txt "# label : color_rgb : 'body' parts : actions"), written by
# datumaro's VocExporter (openvinotoolkit/datumaro, src/datumaro/plugins/data_formats/voc/exporter.py,
# _export_annotations): source "Unknown" x3, <depth> empty when the pixels were not loaded, no <pose>
# unless set, truncated/occluded/difficult, str(float) coordinates, extra <attributes>. An image without
# boxes gets no XML file but is listed in default.txt.
CVAT_XML = """<annotation>
  <folder></folder>
  <filename>frame_000000.jpg</filename>
  <source>
    <database>Unknown</database>
    <annotation>Unknown</annotation>
    <image>Unknown</image>
  </source>
  <size>
    <width>640</width>
    <height>480</height>
    <depth></depth>
  </size>
  <segmented>0</segmented>
  <object>
    <name>car</name>
    <truncated>0</truncated>
    <occluded>1</occluded>
    <difficult>0</difficult>
    <bndbox>
      <xmin>263.87</xmin>
      <ymin>51.2</ymin>
      <xmax>395.55</xmax>
      <ymax>212.91</ymax>
    </bndbox>
    <attributes>
      <attribute>
        <name>color</name>
        <value>red</value>
      </attribute>
    </attributes>
  </object>
  <object>
    <name>person</name>
    <truncated>1</truncated>
    <occluded>0</occluded>
    <difficult>1</difficult>
    <bndbox>
      <xmin>0.0</xmin>
      <ymin>10.5</ymin>
      <xmax>40.25</xmax>
      <ymax>480.0</ymax>
    </bndbox>
  </object>
</annotation>
"""
CVAT_LABELMAP = "# label:color_rgb:parts:actions\nbackground:0,0,0::\nperson:250,50,83::\ncar:51,221,255::\n"


def _cvat_export(root):
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "frame_000000.xml").write_text(CVAT_XML)
    _jpeg(root / "JPEGImages" / "frame_000000.jpg", 640, 480)
    _jpeg(root / "JPEGImages" / "frame_000001.jpg", 64, 48)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "default.txt").write_text("frame_000000\nframe_000001\n")
    (root / "labelmap.txt").write_text(CVAT_LABELMAP)


def test_cvat_export(tmp_path):
    _cvat_export(tmp_path)
    ds = read_voc(tmp_path)
    assert ds.class_names == ("person", "car")  # labelmap.txt's order, background left out
    assert ds.provenance["class_names_from"] == "labelmap.txt"
    assert [im.path.name for im in ds] == ["frame_000000.jpg", "frame_000001.jpg"]
    assert [im.split for im in ds] == [None, None] and ds.provenance["splits"] == ["default"]  # datumaro's "no subset"
    full, empty = ds
    assert full.boxes.tolist() == [pytest.approx([262.87, 50.2, 395.55, 212.91], abs=1e-4),
                                   pytest.approx([-1.0, 9.5, 40.25, 480.0])]
    assert [ds.class_names[k] for k in full.labels.tolist()] == ["car", "person"]
    assert full.difficult.tolist() == [False, True] and full.truncated.tolist() == [False, True]
    assert (len(empty), empty.width, empty.height) == (0, 64, 48)  # no XML: size from the image
    assert len(read_voc(tmp_path, split="default")) == 2


def test_cvat_export_converts_to_voc_and_back_with_flags(tmp_path):
    _cvat_export(tmp_path / "cvat")
    ds = read_voc(tmp_path / "cvat")
    out = tmp_path / "out"
    write_voc(ds, out)  # images stay where they are: <path> points at them
    back = read_voc(out)
    assert back.same_as(ds), back.differences(ds)
    assert (out / "ImageSets" / "Main" / "default.txt").read_text() == "frame_000000\nframe_000001\n"


def test_problems_in_tool_files_are_reported_per_file(tmp_path):
    _cvat_export(tmp_path)
    (tmp_path / "Annotations" / "frame_000002.xml").write_text(CVAT_XML.replace("<name>car</name>", "<name>bus</name>"))
    (tmp_path / "ImageSets" / "Main" / "default.txt").write_text("frame_000000\nframe_000001\nframe_000009\n")
    found: list[Problem] = []
    ds = read_voc(tmp_path, problems=found)
    reasons = sorted(p.reason for p in found)
    assert any("frame_000009" in r and "no image" in r for r in reasons), reasons
    assert any("class 'bus' is not in labelmap.txt" in r for r in reasons), reasons
    assert len(ds) == 3 and len(ds[2]) == 1  # frame_000002 keeps its person
    with pytest.raises(DatasetError, match="frame_000009"):
        read_voc(tmp_path)
