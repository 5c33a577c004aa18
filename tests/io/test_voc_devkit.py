"""Pascal VOC as the devkit publishes it: VOCdevkit/VOC20xx trees, splits, person layout, VOC2008 floats
(sources cited per sample). labelImg and CVAT files are in test_voc_labelimg_cvat.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from convsight.errors import DatasetError
from convsight.io.voc import VOC_CLASSES, read_voc, write_voc

# VOC2007/Annotations/000001.xml exactly as published in VOCtrainval_06-Nov-2007.tar (fields as in the
# VOC2007 devkit document, section "Annotation"; the file is reproduced verbatim in many tutorials):
# source with flickrid, owner, size, segmented, two truncated objects.
DEVKIT_000001 = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000001.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t\t<flickrid>341012865</flickrid>
\t</source>
\t<owner>
\t\t<flickrid>Fried Camels</flickrid>
\t\t<name>Jinky the Fruit Bat</name>
\t</owner>
\t<size>
\t\t<width>353</width>
\t\t<height>500</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>dog</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>48</xmin>
\t\t\t<ymin>240</ymin>
\t\t\t<xmax>195</xmax>
\t\t\t<ymax>371</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>person</name>
\t\t<pose>Left</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>8</xmin>
\t\t\t<ymin>12</ymin>
\t\t\t<xmax>352</xmax>
\t\t\t<ymax>498</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""

# VOC2007/Annotations/000005.xml, its first three objects (the devkit file has five chairs); the third
# is truncated and difficult.
DEVKIT_000005 = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000005.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t\t<flickrid>325991873</flickrid>
\t</source>
\t<owner>
\t\t<flickrid>archintent louisville</flickrid>
\t\t<name>?</name>
\t</owner>
\t<size><width>500</width><height>375</height><depth>3</depth></size>
\t<segmented>0</segmented>
\t<object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
\t<object><name>chair</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>165</xmin><ymin>264</ymin><xmax>253</xmax><ymax>372</ymax></bndbox></object>
\t<object><name>chair</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
\t\t<bndbox><xmin>5</xmin><ymin>244</ymin><xmax>67</xmax><ymax>374</ymax></bndbox></object>
</annotation>
"""

# A third VOC2007 image in the same shape (made-up content: one train).
DEVKIT_000002 = DEVKIT_000001.replace("000001", "000002").replace("<width>353", "<width>335").replace(
    "<name>dog</name>", "<name>train</name>").split("\t<object>\n\t\t<name>person")[0] + "</annotation>\n"

# VOC2012/Annotations/2007_000027.xml as published in the VOC2012 devkit: the person-layout shape, a
# person with <part> children (head, hand, feet) that are not objects of their own.
DEVKIT_2012_LAYOUT = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>2007_000027.jpg</filename>
\t<source>
\t\t<database>The VOC2007 Database</database>
\t\t<annotation>PASCAL VOC2007</annotation>
\t\t<image>flickr</image>
\t</source>
\t<size><width>486</width><height>500</height><depth>3</depth></size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>person</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox><xmin>174</xmin><ymin>101</ymin><xmax>349</xmax><ymax>351</ymax></bndbox>
\t\t<part><name>head</name><bndbox><xmin>169</xmin><ymin>104</ymin><xmax>209</xmax><ymax>146</ymax></bndbox></part>
\t\t<part><name>hand</name><bndbox><xmin>278</xmin><ymin>210</ymin><xmax>297</xmax><ymax>233</ymax></bndbox></part>
\t\t<part><name>foot</name><bndbox><xmin>273</xmin><ymin>333</ymin><xmax>297</xmax><ymax>354</ymax></bndbox></part>
\t\t<part><name>foot</name><bndbox><xmin>319</xmin><ymin>307</ymin><xmax>340</xmax><ymax>326</ymax></bndbox></part>
\t</object>
</annotation>
"""

# VOC2012/Annotations/2008_003483.xml as published (VOC2008+ files): float coordinates, <occluded>,
# and <difficult> after <bndbox> (children in another order), plus person-layout parts.
DEVKIT_2008_FLOATS = """<annotation>
\t<folder>VOC2008</folder>
\t<filename>2008_003483.jpg</filename>
\t<source><database>The VOC2008 Database</database><annotation>PASCAL VOC2008</annotation>
\t\t<image>flickr</image><flickrid>n/a</flickrid></source>
\t<owner><flickrid>n/a</flickrid><name>n/a</name></owner>
\t<size><width>500</width><height>500</height><depth>3</depth></size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>person</name>
\t\t<pose>Frontal</pose>
\t\t<truncated>0</truncated>
\t\t<occluded>0</occluded>
\t\t<bndbox><xmin>304.1916</xmin><ymin>118.2635</ymin><xmax>482.0359</xmax><ymax>500</ymax></bndbox>
\t\t<difficult>0</difficult>
\t\t<part><name>head</name><bndbox><xmin>391.1026</xmin><ymin>120.3603</ymin><xmax>433.1332</xmax>
\t\t\t<ymax>171.6703</ymax></bndbox></part>
\t</object>
</annotation>
"""


def _jpeg(path, w, h):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (200, 40, 40)).save(path, quality=50)
    return path


def _voc_folder(folder, xmls: dict[str, str], sizes: dict[str, tuple[int, int]], splits: dict[str, list[str]]):
    for stem, text in xmls.items():
        (folder / "Annotations").mkdir(parents=True, exist_ok=True)
        (folder / "Annotations" / f"{stem}.xml").write_text(text)
        _jpeg(folder / "JPEGImages" / f"{stem}.jpg", *sizes[stem])
    for name, ids in splits.items():
        (folder / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (folder / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))


@pytest.fixture
def devkit(tmp_path):
    """VOCdevkit/VOC2007 with train/val/trainval/test lists and a classification list (chair_train.txt)."""
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    _voc_folder(voc, {"000001": DEVKIT_000001, "000002": DEVKIT_000002, "000005": DEVKIT_000005},
                {"000001": (353, 500), "000002": (335, 500), "000005": (500, 375)},
                {"train": ["000005"], "val": ["000002"], "trainval": ["000005", "000002"], "test": ["000001"]})
    # classification lists (<class>_<split>.txt, "id  1/-1") live in the same folder and are not splits
    (voc / "ImageSets" / "Main" / "chair_train.txt").write_text("000005  1\n")
    return tmp_path / "VOCdevkit"


def test_devkit_root_reads_every_xml_with_flags_splits_and_standard_classes(devkit):
    ds = read_voc(devkit)
    assert [im.path for im in ds] == [devkit / "VOC2007" / "JPEGImages" / f"{s}.jpg" for s in ("000001", "000002", "000005")]
    assert ds.class_names == VOC_CLASSES
    p = ds.provenance
    assert (p["format"], p["layout"], p["class_names_from"]) == ("voc", "VOCdevkit", "VOC standard 20 classes")
    assert p["years"] == ["VOC2007"] and sorted(p["splits"]) == ["test", "train", "trainval", "val"]
    assert [im.split for im in ds] == ["test", "val", "train"]  # trainval is the union, not a split of its own
    first = ds[0]
    assert (first.width, first.height) == (353, 500)
    assert first.boxes.tolist() == [[47.0, 239.0, 195.0, 371.0], [7.0, 11.0, 352.0, 498.0]]
    assert [ds.class_names[k] for k in first.labels.tolist()] == ["dog", "person"]
    difficult = sum(int(im.difficult.sum()) for im in ds)
    truncated = sum(int(im.truncated.sum()) for im in ds)
    texts = (DEVKIT_000001, DEVKIT_000002, DEVKIT_000005)  # counted in the files themselves
    expected = [sum(t.count(tag) for t in texts) for tag in ("<object>", "<difficult>1<", "<truncated>1<")]
    assert [ds.num_boxes, difficult, truncated] == expected == [6, 1, 4]
    assert ds[2].difficult.tolist() == [False, False, True]


def test_devkit_split_selection_and_entry_points(devkit, tmp_path):
    trainval = read_voc(devkit, split="trainval")
    assert [im.path.stem for im in trainval] == ["000005", "000002"]  # the list's order
    assert trainval.splits == ("trainval",)
    assert [im.path.stem for im in read_voc(devkit, split="test")] == ["000001"]
    with pytest.raises(DatasetError, match=r"no split 'chair_train'; splits: .*test.*train.*trainval.*val"):
        read_voc(devkit, split="chair_train")
    one = read_voc(devkit / "VOC2007", split="val")
    assert one.provenance["layout"] == "VOC folder" and one.provenance["years"] == ["VOC2007"]
    assert len(read_voc(tmp_path)) == 3  # torchvision's root, which holds VOCdevkit/


def test_two_years_are_read_and_a_split_applies_where_it_exists(devkit):
    _voc_folder(devkit / "VOC2012", {"2007_000027": DEVKIT_2012_LAYOUT, "2008_003483": DEVKIT_2008_FLOATS},
                {"2007_000027": (486, 500), "2008_003483": (500, 500)},
                {"train": ["2007_000027"], "val": ["2008_003483"]})
    ds = read_voc(devkit)
    assert ds.provenance["years"] == ["VOC2007", "VOC2012"] and len(ds) == 5
    layout, floats = ds[3], ds[4]
    assert len(layout) == 1 and layout.boxes.tolist() == [[173.0, 100.0, 349.0, 351.0]]  # parts are not objects
    assert len(floats) == 1
    assert floats.boxes.tolist()[0] == pytest.approx([303.1916, 117.2635, 482.0359, 500.0], abs=1e-4)
    assert ds.class_names == VOC_CLASSES
    assert [im.path.stem for im in read_voc(devkit, split="test")] == ["000001"]  # VOC2012 has no test list
    assert [im.path.stem for im in read_voc(devkit, split="train")] == ["000005", "2007_000027"]


def test_missing_filename_means_the_xml_stem_dot_jpg(tmp_path):
    text = DEVKIT_000001.replace("\t<filename>000001.jpg</filename>\n", "").replace(
        "\t<size>\n\t\t<width>353</width>\n\t\t<height>500</height>\n\t\t<depth>3</depth>\n\t</size>\n", "")
    _voc_folder(tmp_path, {"000001": text}, {"000001": (353, 500)}, {})
    im = read_voc(tmp_path)[0]
    assert im.path == tmp_path / "JPEGImages" / "000001.jpg" and (im.width, im.height) == (353, 500)
    (tmp_path / "JPEGImages" / "000001.jpg").rename(tmp_path / "JPEGImages" / "000001.png")
    assert read_voc(tmp_path)[0].path == tmp_path / "JPEGImages" / "000001.png"


def test_devkit_written_back_keeps_flags_splits_and_the_layout(devkit, tmp_path):
    import shutil
    import xml.etree.ElementTree as ET
    from dataclasses import replace

    ds = read_voc(devkit)
    out = tmp_path / "out"
    placed = []
    for im in ds:  # what convert does first: images to JPEGImages/<file name>
        (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
        placed.append(replace(im, path=Path(shutil.copy(im.path, out / "JPEGImages" / im.path.name))))
    write_voc(replace(ds, images=tuple(placed)), out)
    for stem in ("000001", "000002", "000005"):
        src = ET.parse(devkit / "VOC2007" / "Annotations" / f"{stem}.xml").getroot().findall("object")
        new = ET.parse(out / "Annotations" / f"{stem}.xml").getroot().findall("object")
        for tag in ("name", "difficult", "truncated"):
            assert [o.find(tag).text for o in new] == [o.find(tag).text for o in src], (stem, tag)
        for a, b in zip(new, src, strict=True):
            assert [float(a.find("bndbox").find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")] == \
                [float(b.find("bndbox").find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")]
    main = out / "ImageSets" / "Main"
    for name in ("train", "val", "trainval", "test"):
        assert (main / f"{name}.txt").read_text().split() == (devkit / "VOC2007" / "ImageSets" / "Main" /
                                                                f"{name}.txt").read_text().split(), name
    back = read_voc(out)
    assert back.same_as(replace(ds, images=tuple(placed))) and [im.split for im in back] == [im.split for im in ds]
