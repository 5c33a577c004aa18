"""``convert_dataset``: copy a dataset into a new folder in another format's standard layout, keeping
what the target can hold and saying, one line each, what it cannot. The layouts and the rules for
ids, splits, crowd, difficult and segmentation are stated in :mod:`convsight.io.formats`."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from convsight.errors import DatasetError
from convsight.io import atomic, voc
from convsight.io.annotations import AnnotationSet, ImageAnnotation
from convsight.io.atomic import atomic_dir
from convsight.io.coco import DEFAULT_JSON_NAME, write_coco
from convsight.io.yolo_txt import IMAGES_DIR, label_lines, write_yolo

VOC_IMAGES_DIR = "JPEGImages"
VOC_SETS_DIR = Path("ImageSets") / "Main"


class Conversion(NamedTuple):
    """What :func:`convert_dataset` wrote (paths under the new folder) and one line per thing the
    target format could not hold. A tuple, so ``ds, notes = convert_dataset(...)`` works."""

    annotations: AnnotationSet
    notes: list[str]


def _count(ds: AnnotationSet, column: str, mask: str | None = None) -> int:
    """Boxes with flag ``column`` set (and ``mask`` not set, when given)."""
    total = 0
    for im in ds.images:
        flag = getattr(im, column)
        total += int((flag & ~getattr(im, mask) if mask else flag).sum())
    return total


def _sample(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:4])) + (", ..." if len(ids) > 4 else "")


def _lost_ids_and_meta(ds: AnnotationSet, target: str, notes: list[str]) -> None:
    n_ids = sum(im.image_id is not None for im in ds.images)
    n_box = sum(int((im.box_ids >= 0).sum()) for im in ds.images)  # type: ignore[operator]
    if n_ids or n_box:
        notes.append(f"{target} has no image or annotation ids: {n_ids} image ids and {n_box} annotation ids "
                     "not kept (file names are)")
    c = ds.num_classes
    if ds.category_ids is not None and ds.category_ids != tuple(range(1, c + 1)):
        notes.append(f"{target} has no category ids: the class order replaces category ids {_sample(list(ds.category_ids))}")
    lost = [k for k in ("info", "licenses") if ds.meta.get(k)]
    if lost:
        notes.append(f"{target} has no {'/'.join(lost)}: not kept")


def _for_yolo(ds: AnnotationSet, notes: list[str]) -> AnnotationSet:
    ignored = sum(int(im.ignored.sum()) for im in ds.images)
    if ignored:
        notes.append(f"YOLO has no crowd or ignore flag: {ignored} crowd/ignored regions not written (they are not objects)")
    difficult = sum(int((im.difficult & ~im.ignored).sum()) for im in ds.images)  # type: ignore[operator]
    if difficult:
        notes.append(f"YOLO has no difficult flag: {difficult} difficult objects not written (as Ultralytics' VOC converter does)")
    if _count(ds, "truncated"):
        notes.append(f"YOLO has no truncated flag: {_count(ds, 'truncated')} truncated flags dropped")
    written = sum(line.count(" ") > 4 for im in ds.images for line in label_lines(im).splitlines())
    segs = sum(s is not None and not (im.ignored[i] or im.difficult[i])  # type: ignore[index]
               for im in ds.images for i, s in enumerate(im.segmentations))  # type: ignore[arg-type]
    if segs > written:
        notes.append(f"YOLO holds one polygon per box, and only when every box of an image has one: "
                     f"{segs - written} of {segs} segmentations dropped")
    _lost_ids_and_meta(ds, "YOLO", notes)
    return ds


def _for_voc(ds: AnnotationSet, notes: list[str]) -> AnnotationSet:
    ignored = sum(int((im.ignored & ~im.difficult).sum()) for im in ds.images)  # type: ignore[operator]
    if ignored:
        notes.append(f"VOC has no crowd flag: {ignored} crowd/ignored regions written as difficult objects "
                     "(which VOC mAP ignores)")
        ds = replace(ds, images=tuple(replace(im, difficult=im.difficult | im.ignored) for im in ds.images))  # type: ignore[operator]
    segs = sum(s is not None for im in ds.images for s in im.segmentations)  # type: ignore[union-attr]
    if segs:
        notes.append(f"VOC XML holds no polygons or masks: {segs} segmentations dropped")
    _lost_ids_and_meta(ds, "VOC", notes)
    return ds


def _for_coco(ds: AnnotationSet, notes: list[str]) -> AnnotationSet:
    difficult = _count(ds, "difficult", mask="ignored")
    if difficult:
        notes.append(f"COCO has no difficult flag: {difficult} difficult objects written as ordinary objects")
    if _count(ds, "truncated"):
        notes.append(f"COCO has no truncated flag: {_count(ds, 'truncated')} truncated flags dropped")
    missing = [i for i, im in enumerate(ds.images) if im.image_id is None]
    if not missing:
        return ds
    stems = [ds.images[i].path.stem for i in missing]
    used = {im.image_id for im in ds.images if im.image_id is not None}
    if all(re.fullmatch(r"\d{1,18}", s) for s in stems) and len({int(s) for s in stems}) == len(stems) \
            and not used & {int(s) for s in stems}:
        new = [int(s) for s in stems]  # COCO's own naming: 000000397133.jpg is image 397133
    else:
        start = max(used, default=0) + 1
        new = list(range(start, start + len(missing)))
    images = list(ds.images)
    for i, iid in zip(missing, new, strict=True):
        images[i] = replace(images[i], image_id=iid)
    return replace(ds, images=tuple(images))


def _folder(to: str, split: str | None) -> Path:
    if to == "voc":
        return Path(VOC_IMAGES_DIR)
    return Path(IMAGES_DIR) / split if split else Path(IMAGES_DIR)


def _plan(ds: AnnotationSet, to: str, notes: list[str]) -> list[Path]:
    """The new relative path of every image. Clashes (same name in one target folder; for YOLO the
    same stem, for VOC the same stem anywhere) are renamed ``<source folder>_<name>``, then numbered."""
    taken: set[tuple[str, str]] = set()
    out, renamed = [], []
    for im in ds.images:
        folder = _folder(to, im.split if im.split or not ds.splits else ds.splits[0])
        candidates = [im.path.name, f"{im.path.parent.name}_{im.path.name}"]
        candidates += [f"{im.path.parent.name}_{im.path.stem}_{k}{im.path.suffix}" for k in range(1, len(ds) + 1)]
        for name in candidates:
            key = (str(folder), Path(name).stem if to in ("voc", "yolo") else name)
            if key not in taken:
                break
        taken.add(key)
        if name != im.path.name:
            renamed.append(f"{im.path} -> {folder / name}")
        out.append(folder / name)
    if renamed:
        notes.append(f"{len(renamed)} images renamed so that file names do not clash (first: {renamed[0]})")
    return out


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # cheap when on the same file system
    except OSError:
        shutil.copy2(src, dst)


def _write(ds: AnnotationSet, tmp: Path, to: str) -> None:
    if to == "yolo":
        write_yolo(ds, tmp)
    elif to == "voc":
        voc.write_voc(ds, tmp)
        for split in ds.splits:  # ImageSets/Main/<split>.txt, unless the VOC writer made them
            sets = tmp / VOC_SETS_DIR / f"{split}.txt"
            if not sets.exists():
                atomic.write_text(sets, "".join(f"{im.path.stem}\n" for im in ds.images if im.split == split))
    elif not ds.splits:
        write_coco(ds, tmp / DEFAULT_JSON_NAME)
    else:
        for split in ds.splits:
            part = replace(ds, images=tuple(im for im in ds.images if im.split == split))
            # Written beside the images so that file_name is the bare name, then moved to annotations/
            staged = write_coco(part, tmp / IMAGES_DIR / split / f".instances_{split}.json")
            (tmp / "annotations").mkdir(exist_ok=True)
            os.replace(staged, tmp / "annotations" / f"instances_{split}.json")


def convert_dataset(src: str | os.PathLike[str], dst: str | os.PathLike[str], to: str, src_format: str | None = None,
                    overwrite: bool = False, split: str | None = None) -> Conversion:
    """Copy the dataset at ``src`` (only ``split`` when given) into the new folder ``dst`` in format
    ``to``, in that format's standard layout (see :mod:`convsight.io.formats`).

    The folder appears only when complete; a non-empty ``dst`` is refused unless ``overwrite``.
    Returns the annotations as written (paths under ``dst``) and the notes on what was not kept.
    """
    from convsight.io.formats import check_format, read_dataset

    to = check_format(to)
    ds = read_dataset(src, src_format, split=split)
    notes: list[str] = []
    ds = {"yolo": _for_yolo, "voc": _for_voc, "coco": _for_coco}[to](ds, notes)
    if to != "voc" and ds.splits and any(im.split is None for im in ds.images):
        n = sum(im.split is None for im in ds.images)
        notes.append(f"{n} images without a split put in split {ds.splits[0]!r} ({to.upper()} keeps one folder per split)")
    rel = _plan(ds, to, notes)
    dst = Path(dst)
    with atomic_dir(dst, overwrite=overwrite) as tmp:
        placed: list[ImageAnnotation] = []
        for im, r in zip(ds.images, rel, strict=True):
            if not im.path.is_file():
                raise DatasetError(f"{im.path}: image file not found (referenced by {src})")
            _place(im.path, tmp / r)
            split_name = im.split if im.split or not ds.splits or to == "voc" else ds.splits[0]
            placed.append(replace(im, path=tmp / r, split=split_name))
        _write(replace(ds, images=tuple(placed)), tmp, to)
    out = tuple(replace(im, path=dst / r) for im, r in zip(placed, rel, strict=True))
    return Conversion(replace(ds, images=out, provenance={"format": to, "converted_from": str(src)}), notes)


__all__ = ["Conversion", "convert_dataset"]
