"""One Pascal VOC XML file: parse it as the devkit, labelImg and CVAT write it, and write one back.

Coordinates: VOC stores 1-based inclusive pixel indices. A box covering 0-based pixel columns
``x1 .. x2-1`` is written ``xmin = x1 + 1, xmax = x2`` (the devkit's convention; detectron2 reads it
back the same way). The shift is done in float64 and numbers are written with full precision, so
integer and float32 boxes round-trip exactly. CVAT writes floats (``<xmin>263.87</xmin>``); they are
read with the same convention.

What is read from an ``<object>``: ``name``, ``bndbox`` (children in any order), ``difficult`` and
``truncated`` (absent means 0). ``pose``, ``occluded`` (CVAT/datumaro), ``attributes`` (CVAT),
``actions`` and the ``part`` boxes of the VOC person layout are not kept: convsight's model has no
column for them. Parts are children of their person and are never read as objects.

Where the image is (the first that exists): ``<path>`` (labelImg writes an absolute path of the
machine it ran on), ``JPEGImages/<filename>``, ``<filename>`` beside the XML. A missing
``<filename>`` means the last part of ``<path>`` when there is one, else ``<xml stem>.jpg`` (the
devkit's rule; other image extensions are tried after it).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from convsight.errors import ImageError
from convsight.io.annotations import ImageAnnotation, relative_or_absolute
from convsight.io.images import IMAGE_EXTENSIONS, image_size

_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


class BadRecord(Exception):
    """A problem that makes one object (or one whole file) unreadable; the caller reports it."""


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # 0-based xyxy, float64 values
    difficult: bool
    truncated: bool


@dataclass(frozen=True)
class VocRecord:
    """One parsed XML: the image it describes, its size and its readable objects."""

    xml: Path
    image: Path
    width: int
    height: int
    objects: tuple[VocObject, ...]


def _text(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()


def _required(el: ET.Element, tag: str) -> str:
    value = _text(el, tag)
    if value is None:
        raise BadRecord(f"missing <{tag}>")
    return value


def _number(el: ET.Element, tag: str) -> float:
    value = _required(el, tag)
    try:
        x = float(value)
    except ValueError:
        raise BadRecord(f"<{tag}> is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise BadRecord(f"<{tag}> is not a finite number: {value!r}")
    return x


def _flag(el: ET.Element, tag: str) -> bool:
    """``<difficult>``/``<truncated>``: absent or empty means 0; ``0``/``1`` as the devkit writes,
    ``true``/``false`` as some exporters do."""
    value = _text(el, tag)
    if value is None:
        return False
    if value.lower() in ("true", "yes"):
        return True
    if value.lower() in ("false", "no"):
        return False
    try:
        return float(value) != 0
    except ValueError:
        raise BadRecord(f"<{tag}> is not 0 or 1: {value!r}") from None


def _parse_object(obj: ET.Element) -> VocObject:
    name = _required(obj, "name")
    bb = obj.find("bndbox")
    if bb is None:
        raise BadRecord(f"{name!r} has no <bndbox>")
    xmin, ymin, xmax, ymax = (_number(bb, t) for t in _BOX_TAGS)
    return VocObject(name, (xmin - 1.0, ymin - 1.0, xmax, ymax), _flag(obj, "difficult"), _flag(obj, "truncated"))


def image_candidates(ann: ET.Element, xml: Path, root: Path, images_dir: Path) -> tuple[list[Path], Path]:
    """Where the image of ``ann`` may be, best first (see the module docstring), and its standard
    place ``images_dir/<filename>`` (recorded when none exists here)."""
    filename = _text(ann, "filename")
    path_text = _text(ann, "path")
    out: list[Path] = []
    if path_text:
        p = Path(path_text)
        out += [p] if p.is_absolute() else [root / p, xml.parent / p]
        if filename is None:  # the last part of a path written on Windows or POSIX
            filename = PureWindowsPath(path_text).name
    if filename is None:
        exts = (".jpg", *(e for e in IMAGE_EXTENSIONS if e != ".jpg"))
        return out + [images_dir / f"{xml.stem}{e}" for e in exts], images_dir / f"{xml.stem}.jpg"
    return out + [images_dir / filename, xml.parent / filename], images_dir / filename


def _size(ann: ET.Element) -> tuple[int, int] | None:
    """``<size>`` as ints, or None when it is missing or zero (some exporters write 0)."""
    size = ann.find("size")
    if size is None or _text(size, "width") is None or _text(size, "height") is None:
        return None
    w, h = _number(size, "width"), _number(size, "height")
    if w <= 0 or h <= 0:
        return None
    return int(w), int(h)


def parse_voc_xml(xml: Path, root: Path, images_dir: Path) -> tuple[VocRecord, list[str]]:
    """Parse one annotation file. Raises :class:`BadRecord` when the whole file is unusable; returns
    the record and one reason per object that was skipped (``"object 3: missing <xmin>"``)."""
    try:
        ann = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise BadRecord(f"not valid XML ({e})") from None
    except OSError as e:
        raise BadRecord(f"cannot read ({e.strerror or e})") from None
    if ann.tag != "annotation":
        raise BadRecord(f"root element is <{ann.tag}>, expected <annotation>")
    candidates, standard = image_candidates(ann, xml, root, images_dir)
    found = next((c for c in candidates if c.is_file()), None)
    size = _size(ann)
    if size is None:
        if found is None:
            raise BadRecord(f"no <size>, and no image to read it from (tried {_tried(candidates, standard)})")
        try:
            size = image_size(found)
        except ImageError as e:
            raise BadRecord(f"no <size>, and {e}") from None
    # An image not found here is recorded at its standard place; `data validate` reports it missing.
    image = found if found is not None else standard
    objects, skipped = [], []
    for k, obj in enumerate(ann.findall("object")):  # direct children only: <part> is not an object
        try:
            objects.append(_parse_object(obj))
        except BadRecord as e:
            skipped.append(f"object {k}: {e}")
    return VocRecord(xml, image, size[0], size[1], tuple(objects)), skipped


def _tried(candidates: list[Path], standard: Path) -> str:
    """The places looked at, for an error message (other image extensions summarised)."""
    variant = [c != standard and c.with_suffix("") == standard.with_suffix("") for c in candidates]
    shown = dict.fromkeys(c for c, v in zip(candidates, variant, strict=True) if not v)
    more = " (and other image extensions)" if any(variant) else ""
    return ", ".join(str(c) for c in shown) + more


def _num(x: float) -> str:
    """Shortest text that parses back to the same float64 (integers without a decimal point)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def image_to_xml(im: ImageAnnotation, class_names: tuple[str, ...], root: Path, images_dir: Path) -> bytes:
    """The devkit's XML shape for one image. ``<path>`` is written only when the image is not at
    ``images_dir/<filename>``. Crowd and ignore-marked boxes are written ``difficult=1``: VOC has no
    crowd flag, and difficult is how VOC says "neither a hit nor a miss" (the devkit's evaluation)."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = im.path.parent.name
    ET.SubElement(ann, "filename").text = im.path.name
    if os.path.abspath(im.path) != os.path.abspath(images_dir / im.path.name):
        ET.SubElement(ann, "path").text = relative_or_absolute(im.path, root)
    ET.SubElement(ET.SubElement(ann, "source"), "database").text = "Unknown"
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(im.width)
    ET.SubElement(size, "height").text = str(im.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    difficult = (im.difficult | im.ignored).tolist()  # type: ignore[operator]
    rows = zip(im.boxes.double().tolist(), im.labels.tolist(), difficult, im.truncated.tolist(), strict=True)  # type: ignore[union-attr]
    for box, label, diff, trunc in rows:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = class_names[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(trunc))
        ET.SubElement(obj, "difficult").text = str(int(diff))
        bb = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = box
        for tag, v in zip(_BOX_TAGS, (x1 + 1.0, y1 + 1.0, x2, y2), strict=True):
            ET.SubElement(bb, tag).text = _num(v)
    ET.indent(ann, space="\t")
    return ET.tostring(ann, encoding="utf-8", xml_declaration=False) + b"\n"
