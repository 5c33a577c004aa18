"""Pascal VOC datasets: a VOCdevkit checkout as it is, and what labelImg and CVAT write.

Layouts read (``ROOT`` is the path given):

* ``VOC folder``: ``ROOT/Annotations/<id>.xml``, images in ``ROOT/JPEGImages/``, optional
  ``ROOT/ImageSets/Main/<split>.txt`` (one image id per line). A ``VOC2007/`` folder of the devkit,
  a CVAT "PASCAL VOC 1.1" export and convsight's own output all have this shape.
* ``VOCdevkit``: ``ROOT`` holds one or more such folders (``VOC2007/``, ``VOC2012/``, ...). Every
  year is read; ``provenance["years"]`` lists them and ``split`` applies to each year that has it.
  A folder holding ``VOCdevkit/`` (torchvision's download root) works too.

Splits. ``split`` reads only the ids listed in ``ImageSets/Main/<split>.txt`` (in file order), and
their images get ``.split = split``. Without ``split`` every XML is read, and an image gets the one
split file that lists it (``trainval`` is left out when ``train``/``val`` exist, since it is their
union); an image listed by none, or by several, has no split. ``default`` is datumaro's (and so
CVAT's) name for "no split": its images get ``.split = None``, and the writer puts split-less images
there. ``<class>_<split>.txt`` classification lists are not split files. An id listed in a split file
without an XML (CVAT writes no XML for an image without boxes) is an image without boxes when its
file is in ``JPEGImages/``.

Class order, first that applies (``provenance["class_names_from"]`` says which): ``classes.txt``
(convsight's own), ``labelmap.txt`` (datumaro/CVAT; its ``background`` entry is a class only when an
object is named so), the 20 standard VOC names in the devkit's order when every name found is one of
them, else the sorted names.

The writer writes the standard layout: ``Annotations/<image stem>.xml``, ``ImageSets/Main/<split>.txt``
for each split (plus ``trainval.txt`` when there are ``train`` and ``val`` but no ``trainval``, as in the
devkit; split-less images go to ``default.txt``, which datumaro/CVAT need to import a folder),
``classes.txt`` always (so that any class order, and a set without objects, reads back exactly;
other tools ignore it) and ``labelmap.txt`` (CVAT/datumaro refuse non-VOC names without it).
Images are placed at ``JPEGImages/<file name>`` beforehand by the converter (``convert_dataset``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from convsight.errors import DatasetError, ImageError
from convsight.io import atomic
from convsight.io.annotations import AnnotationSet, ImageAnnotation, Problem, image_problems
from convsight.io.class_names import CLASSES_FILE, read_class_names, write_class_names
from convsight.io.images import IMAGE_EXTENSIONS, image_size
from convsight.io.voc_xml import BadRecord, VocRecord, image_to_xml, parse_voc_xml

ANNOTATIONS_DIR = "Annotations"
IMAGES_DIR = "JPEGImages"
SPLITS_DIR = "ImageSets/Main"
LABELMAP_FILE = "labelmap.txt"
DEFAULT_SPLIT = "default"  # datumaro's DEFAULT_SUBSET_NAME: an item without a subset
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_YEAR = re.compile(r"VOC\d{4}")


def voc_folders(path: Path) -> tuple[str, list[Path]]:
    """``(layout, VOC folders)`` at ``path`` (see the module docstring); no folders when it is not VOC."""
    if (path / ANNOTATIONS_DIR).is_dir():
        return "VOC folder", [path]
    if path.name != "VOCdevkit" and (path / "VOCdevkit").is_dir():
        path = path / "VOCdevkit"
    if not path.is_dir():
        return "", []
    kids = sorted(d for d in path.iterdir() if d.is_dir() and (d / ANNOTATIONS_DIR).is_dir())
    if path.name != "VOCdevkit":  # elsewhere only VOC20xx-like folders, not any folder with Annotations/
        kids = [d for d in kids if d.name.upper().startswith("VOC")]
    return ("VOCdevkit", kids) if kids else ("", [])


def is_voc_dataset(path: str | os.PathLike[str]) -> bool:
    """True for a ``VOCdevkit/`` root, a ``VOC2007/``-style folder or any folder with ``Annotations/``."""
    return bool(voc_folders(Path(path))[1])


def split_files(folder: Path) -> dict[str, Path]:
    """``{split: ImageSets/Main/<split>.txt}`` of one VOC folder, without ``<class>_<split>.txt`` lists."""
    main = folder / SPLITS_DIR
    files = {p.stem: p for p in sorted(main.glob("*.txt"))} if main.is_dir() else {}
    return {s: p for s, p in files.items() if not ("_" in s and s.rsplit("_", 1)[1] in files)}


def read_ids(path: Path) -> list[str]:
    """Image ids of a split file, one per line (blank and ``#`` lines skipped). The whole line is the
    id, as datumaro reads ``Main`` lists, so names with spaces survive."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file") from None
    return list(dict.fromkeys(ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")))


def _fail(problems: list[Problem] | None, where: Path | str, reason: str) -> None:
    """Raise :class:`DatasetError`, or note a :class:`Problem` when collecting them."""
    if problems is None:
        raise DatasetError(f"{where}: {reason}")
    problems.append(Problem(str(where), reason))


def _elementary(splits: Sequence[str]) -> set[str]:
    """The splits an image can belong to: ``trainval`` is the union of train and val."""
    out = set(splits) - {DEFAULT_SPLIT}
    return out - {"trainval"} if out & {"train", "val"} else out


class _Entry(NamedTuple):
    record: VocRecord | None  # None: an image listed in a split file that no XML describes
    image: Path | None  # that image (when record is None)
    split: str | None


def _read_folder(folder: Path, split: str | None, problems: list[Problem] | None) -> list[_Entry]:
    """One entry per image of one VOC folder. Unreadable files are reported and skipped."""
    files = split_files(folder)
    ann_dir, images_dir = folder / ANNOTATIONS_DIR, folder / IMAGES_DIR
    if split is not None:
        ids = read_ids(files[split])
        member: dict[str, str | None] = {i: split for i in ids}
        first_list = {i: files[split] for i in ids}
    else:
        lists = {s: read_ids(p) for s, p in files.items()}
        first_list = {i: files[s] for s in reversed(list(lists)) for i in lists[s]}
        by_id: dict[str, list[str]] = {}
        for s in _elementary(list(lists)):
            for i in lists[s]:
                by_id.setdefault(i, []).append(s)
        member = {i: ss[0] if len(ss) == 1 else None for i, ss in by_id.items()}
        on_disk = {p.relative_to(ann_dir).with_suffix("").as_posix() for p in ann_dir.rglob("*.xml")}
        ids = sorted(on_disk | {i for ids_ in lists.values() for i in ids_})
    out: list[_Entry] = []
    for i in ids:
        xml = ann_dir / f"{i}.xml"
        s = member.get(i)
        s = None if s == DEFAULT_SPLIT else s
        if not xml.is_file():
            listed = first_list[i]
            image = next((images_dir / f"{i}{e}" for e in IMAGE_EXTENSIONS if (images_dir / f"{i}{e}").is_file()), None)
            if image is None:
                _fail(problems, listed, f"image id {i!r} has no {xml} and no image in {images_dir}")
                continue
            out.append(_Entry(None, image, s))
            continue
        try:
            record, skipped = parse_voc_xml(xml, folder, images_dir)
        except BadRecord as e:
            _fail(problems, xml, str(e))
            continue
        for reason in skipped:
            _fail(problems, xml, reason)
        out.append(_Entry(record, None, s))
    return out


def _class_file_names(folders: list[Path], root: Path) -> tuple[tuple[str, ...], str] | None:
    """Class names from ``classes.txt`` or ``labelmap.txt`` (root first, then each year's folder)."""
    for fname, reader in ((CLASSES_FILE, _read_classes_txt), (LABELMAP_FILE, read_labelmap)):
        found = {}
        for d in dict.fromkeys([root, *folders]):
            if (d / fname).is_file():
                found[d / fname] = reader(d / fname)
        if len(set(found.values())) > 1:
            a, b = list(found)[:2]
            raise DatasetError(f"{a}: class names differ from those in {b}")
        if found:
            return next(iter(found.values())), fname
    return None


def _read_classes_txt(path: Path) -> tuple[str, ...]:
    names = read_class_names(path.parent)
    assert names is not None  # the file exists
    return names


def read_labelmap(path: Path) -> tuple[str, ...]:
    """Class names of a datumaro/CVAT ``labelmap.txt`` (``name:color:parts:actions`` lines), in order,
    its ``background`` entry included (see :func:`_class_names`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file") from None
    names = [ln.split(":")[0].strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: duplicate class names")
    return tuple(names)


def _class_names(found: set[str], folders: list[Path], root: Path) -> tuple[tuple[str, ...], str]:
    from_file = _class_file_names(folders, root)
    if from_file is not None:
        names, fname = from_file
        if fname == LABELMAP_FILE and "background" not in found:  # datumaro always adds it: segmentation's
            names = tuple(n for n in names if n != "background")
        return names, fname
    if found and found <= set(VOC_CLASSES):
        return VOC_CLASSES, "VOC standard 20 classes"
    return tuple(sorted(found)), "sorted names found in the XML files"


def _image(record: VocRecord, index: dict[str, int], split: str | None,
           problems: list[Problem] | None, class_source: str) -> ImageAnnotation:
    keep = []
    for k, obj in enumerate(record.objects):
        if obj.name in index:
            keep.append(obj)
        else:
            _fail(problems, record.xml, f"object {k}: class {obj.name!r} is not in {class_source}")
    im = ImageAnnotation(
        path=record.image, width=record.width, height=record.height,
        boxes=torch.tensor([o.box for o in keep], dtype=torch.float64).to(torch.float32).reshape(-1, 4),
        labels=torch.tensor([index[o.name] for o in keep], dtype=torch.int64),
        difficult=torch.tensor([o.difficult for o in keep], dtype=torch.bool),
        truncated=torch.tensor([o.truncated for o in keep], dtype=torch.bool),
        split=split,
    )
    bad = image_problems(im, list(index), str(record.xml))
    if not bad:
        return im
    if problems is None:
        raise DatasetError(str(bad[0]))
    problems.extend(bad)  # and keep only the sound boxes
    sound = [not image_problems(im.select([k]), list(index)) for k in range(len(im))]
    return im.select(torch.tensor(sound, dtype=torch.bool))  # a mask: select([]) would not index


def read_voc(root: str | os.PathLike[str], split: str | None = None,
             problems: list[Problem] | None = None) -> AnnotationSet:
    """Read a VOC folder or a VOCdevkit (see the module docstring); ``split`` picks one
    ``ImageSets/Main/<split>.txt``. With ``problems``, unreadable files and objects (bad XML, a missing
    ``<bndbox>``, a number that does not parse, an unknown class, a box outside its image) are noted
    there and skipped; otherwise the first raises :class:`DatasetError` naming its file.

    ``provenance``: ``format`` ("voc"), ``layout`` ("VOC folder" or "VOCdevkit"), ``class_names_from``,
    ``splits`` (every split file there is), ``years`` (the ``VOC20xx`` folders read), ``folders``."""
    root = Path(root)
    layout, folders = voc_folders(root)
    if not folders:
        raise DatasetError(f"{root}: not a VOC dataset (no {ANNOTATIONS_DIR}/ folder, "
                           f"and no VOC20xx/{ANNOTATIONS_DIR}/ inside)")
    available = list(dict.fromkeys(s for d in folders for s in split_files(d)))
    if split is not None:
        folders = [d for d in folders if split in split_files(d)]
        if not folders:
            have = ", ".join(available) or f"none (no {SPLITS_DIR}/*.txt files)"
            raise DatasetError(f"{root}: no split {split!r}; splits: {have}")
    entries = [e for d in folders for e in _read_folder(d, split, problems)]
    if not entries and problems is None:
        where = f"split {split!r} lists no images" if split is not None else \
            f"no .xml files in {', '.join(str(d / ANNOTATIONS_DIR) for d in folders)}"
        raise DatasetError(f"{root}: {where}")
    names_found = {o.name for e in entries if e.record is not None for o in e.record.objects}
    class_names, names_from = _class_names(names_found, folders, root)
    index = {n: k for k, n in enumerate(class_names)}
    source = names_from if names_from.endswith(".txt") else "the class list"
    images = []
    for record, image, s in entries:
        if record is not None:
            images.append(_image(record, index, s, problems, source))
            continue
        assert image is not None  # listed in a split file, no XML: an image without boxes
        try:
            w, h = image_size(image)
        except ImageError as e:
            _fail(problems, image, str(e).removeprefix(f"{image}: "))
            continue
        images.append(ImageAnnotation(image, w, h, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), split=s))
    years = [d.name for d in folders if _YEAR.fullmatch(d.name)]
    provenance = {"format": "voc", "layout": layout, "class_names_from": names_from, "splits": available,
                  "years": years, "folders": [str(d) for d in folders]}
    return AnnotationSet(images=tuple(images), class_names=class_names, provenance=provenance)


def _stems(ds: AnnotationSet) -> list[str]:
    """One XML name per image: the stem of its file name; two images with one stem cannot both be written."""
    seen: dict[str, Path] = {}
    for im in ds.images:
        stem = im.path.stem
        if stem in seen:
            raise DatasetError(f"{im.path}: same VOC name {stem}.xml as {seen[stem]} (rename one of the images)")
        seen[stem] = im.path
    return list(seen)


def _split_lists(ds: AnnotationSet, stems: list[str]) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for im, stem in zip(ds.images, stems, strict=True):
        lists.setdefault(im.split or DEFAULT_SPLIT, []).append(stem)
    if "train" in lists and "val" in lists and "trainval" not in lists:
        lists["trainval"] = lists["train"] + lists["val"]
    return lists


def write_labelmap(path: Path, class_names: Sequence[str]) -> Path | None:
    """datumaro's ``labelmap.txt`` (``name:color:parts:actions``, colors left to the reader); None
    when a name cannot be written in it (``:`` or ``#``), since classes.txt still carries the order."""
    if any(":" in n or n.startswith("#") or n != n.strip() or not n or "\n" in n for n in class_names):
        return None
    names = list(class_names) if "background" in class_names else ["background", *class_names]
    return atomic.write_text(path, "# label:color_rgb:parts:actions\n" + "".join(f"{n}:::\n" for n in names))


def write_voc(ds: AnnotationSet, root: str | os.PathLike[str]) -> Path:
    """Write the annotations of ``ds`` in the standard layout under ``root`` (see the module
    docstring); image files are not touched. Returns ``root``."""
    root = Path(root)
    stems = _stems(ds)
    images_dir = root / IMAGES_DIR
    (root / ANNOTATIONS_DIR).mkdir(parents=True, exist_ok=True)  # even for a set without images
    for im, stem in zip(ds.images, stems, strict=True):
        atomic.write_bytes(root / ANNOTATIONS_DIR / f"{stem}.xml", image_to_xml(im, ds.class_names, root, images_dir))
    for name, ids in _split_lists(ds, stems).items():
        atomic.write_text(root / SPLITS_DIR / f"{name}.txt", "".join(f"{i}\n" for i in ids))
    write_class_names(root, ds.class_names)
    write_labelmap(root / LABELMAP_FILE, ds.class_names)
    return root
