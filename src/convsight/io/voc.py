"""Pascal VOC XML: one ``Annotations/<stem>.xml`` per image, class order in ``classes.txt``.

VOC stores 1-based inclusive pixel indices: a box covering 0-based pixel columns ``x1 .. x2-1`` is
written ``xmin = x1 + 1, xmax = x2`` (detectron2 reads it back the same way). The shift is done in
float64 and numbers are written with full precision, so integer and float32 boxes round-trip exactly.
Images with no objects get an XML file with no ``<object>``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from convsight.errors import DatasetError
from convsight.io import atomic
from convsight.io.annotations import AnnotationSet, ImageAnnotation, relative_or_absolute, validate_image
from convsight.io.class_names import read_class_names, write_class_names

ANNOTATIONS_DIR = "Annotations"
IMAGES_DIR = "JPEGImages"  # where plain VOC keeps images; our writer records <path> instead when elsewhere


def _num(x: float) -> str:
    """Shortest text that parses back to the same float64 (integers without a decimal point)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _text(el: ET.Element, tag: str, where: str) -> str:
    child = el.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(el: ET.Element, tag: str, where: str) -> float:
    value = _text(el, tag, where)
    try:
        return float(value)
    except ValueError:
        raise DatasetError(f"{where}: <{tag}> is not a number: {value!r}") from None


def _xml_stem(path: Path, root: Path) -> str:
    # Images in sub-folders would collide by stem; fold the relative folder into the name.
    rel = relative_or_absolute(path, root)
    stem = rel.rsplit(".", 1)[0] if not os.path.isabs(rel) else path.stem
    return stem.replace("/", "__")


def image_to_xml(im: ImageAnnotation, class_names: tuple[str, ...], root: Path) -> bytes:
    ann = ET.Element("annotation")
    rel = relative_or_absolute(im.path, root)
    ET.SubElement(ann, "folder").text = Path(rel).parent.as_posix() if not os.path.isabs(rel) else ""
    ET.SubElement(ann, "filename").text = im.path.name
    ET.SubElement(ann, "path").text = rel
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(im.width)
    ET.SubElement(size, "height").text = str(im.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    for box, label in zip(im.boxes.double().tolist(), im.labels.tolist(), strict=True):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = class_names[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = box
        for tag, v in (("xmin", x1 + 1.0), ("ymin", y1 + 1.0), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bb, tag).text = _num(v)
    ET.indent(ann)
    return ET.tostring(ann, encoding="utf-8", xml_declaration=False) + b"\n"


def write_voc(ds: AnnotationSet, root: str | os.PathLike[str]) -> Path:
    """Write ``root/Annotations/*.xml`` and ``root/classes.txt``; image files are not touched."""
    root = Path(root)
    seen: dict[str, Path] = {}
    for im in ds.images:
        stem = _xml_stem(im.path, root)
        if stem in seen:
            raise DatasetError(f"{im.path}: two images map to the same VOC file {stem}.xml ({seen[stem]})")
        seen[stem] = im.path
        atomic.write_bytes(root / ANNOTATIONS_DIR / f"{stem}.xml", image_to_xml(im, ds.class_names, root))
    write_class_names(root, ds.class_names)
    return root


def _parse_xml(xml_path: Path, root: Path) -> tuple[Path, int, int, list[list[float]], list[str]]:
    where = str(xml_path)
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as e:
        raise DatasetError(f"{where}: not valid XML ({e})") from None
    ann = tree.getroot()
    if ann.tag != "annotation":
        raise DatasetError(f"{where}: root element is <{ann.tag}>, expected <annotation>")
    path_el = ann.find("path")
    if path_el is not None and path_el.text and path_el.text.strip():
        p = Path(path_el.text.strip())
        image = p if p.is_absolute() else root / p
    else:
        image = root / IMAGES_DIR / _text(ann, "filename", where)
    size = ann.find("size")
    if size is None:
        raise DatasetError(f"{where}: missing <size>")
    width, height = int(_number(size, "width", where)), int(_number(size, "height", where))
    if width <= 0 or height <= 0:  # some VOC exporters write 0: read the real size from the image
        from convsight.io.images import image_size

        width, height = image_size(image)
    boxes, names = [], []
    for k, obj in enumerate(ann.findall("object")):
        ow = f"{where}: object {k}"
        names.append(_text(obj, "name", ow))
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{ow}: missing <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb, t, ow) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
    return image, width, height, boxes, names


def read_voc(root: str | os.PathLike[str]) -> AnnotationSet:
    """Read ``root/Annotations/*.xml``; class order from ``root/classes.txt`` when present, else the
    sorted set of names found."""
    root = Path(root)
    ann_dir = root / ANNOTATIONS_DIR
    if not ann_dir.is_dir():
        raise DatasetError(f"{root}: not a VOC dataset (no {ANNOTATIONS_DIR}/ folder)")
    xml_files = sorted(ann_dir.glob("*.xml"))
    if not xml_files:
        raise DatasetError(f"{ann_dir}: no .xml files")
    parsed = [(x, *_parse_xml(x, root)) for x in xml_files]
    class_names = read_class_names(root)
    if class_names is None:
        class_names = tuple(sorted({n for *_, names in parsed for n in names}))
    index = {n: i for i, n in enumerate(class_names)}
    images = []
    for xml_path, image, width, height, boxes, names in parsed:
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DatasetError(f"{xml_path}: class {unknown[0]!r} is not in {root / 'classes.txt'}")
        im = ImageAnnotation(
            path=image,
            width=width,
            height=height,
            boxes=torch.tensor(boxes, dtype=torch.float64).to(torch.float32).reshape(-1, 4),
            labels=torch.tensor([index[n] for n in names], dtype=torch.int64),
        )
        validate_image(im, class_names, where=str(xml_path))
        images.append(im)
    return AnnotationSet(images=tuple(images), class_names=class_names)
