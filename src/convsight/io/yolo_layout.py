"""Where a YOLO dataset keeps its images, labels, splits and class names.

Four layouts are recognised, tried in this order on a folder (a ``.yaml`` or ``.data`` file may also be
given directly):

* **Ultralytics** ``data.yaml`` (``path``, ``train``/``val``/``test``, ``names`` as a list or a dict
  ``{0: person}``, optional ``nc``). Each split entry is a folder of images, a ``.txt`` file listing
  image paths, or a list of those. ``path`` is the dataset root: relative to the yaml's folder (an
  Ultralytics install resolves it against its ``datasets_dir`` setting, which a plain folder lacks, so
  a relative ``path`` that does not exist falls back to the yaml's folder). An entry that does not exist
  and starts with ``../`` is retried without it, as Ultralytics does: this is what makes Roboflow's
  ``train: ../train/images`` work with the yaml at the export's root.
* **Roboflow** split-first export: ``train/images``, ``train/labels``, ``valid/...``, ``test/...``,
  with or without its ``data.yaml``.
* **darknet / CVAT "YOLO 1.1"**: ``obj.data`` (``classes=``, ``train=``, ``valid=``, ``names=``,
  ``backup=``), ``obj.names``, ``obj_<subset>_data/`` with images and ``.txt`` labels side by side,
  and ``train.txt`` listing images. The paths inside are relative to darknet's working folder
  (``data/obj_train_data/x.jpg``), so a path that does not exist below the root is retried with its
  leading folders removed one by one.
* **plain**: ``images/`` + ``labels/`` (+ ``classes.txt`` or ``obj.names``); sub-folders of
  ``images/`` named after a split (``train``, ``val``, ``valid``, ``test``) give the split. A split
  folder of a Roboflow export read by itself (``train/``) takes its names from the export's data.yaml.

When every split names the same images (Ultralytics' coco128.yaml has ``train`` and ``val`` both
``images/train2017``), the dataset has no splits.

Labels are found by Ultralytics' rule (``img2label_paths``): the last ``/images/`` of the image path
becomes ``/labels/`` and the suffix ``.txt``; an image whose path has no ``images`` folder, or whose
label is not there, has its label beside it (darknet). Split names are normalised: Roboflow's and
darknet's ``valid`` (and Ultralytics' ``validation`` key) become ``val``, so ``--split val`` means
the same thing in every format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convsight.errors import DatasetError
from convsight.io.annotations import Problem
from convsight.io.class_names import CLASSES_FILE, read_class_names
from convsight.io.images import IMAGE_EXTENSIONS

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
SPLIT_KEYS = ("train", "val", "test")
_SPLIT_ALIASES = {"valid": "val", "validation": "val"}


def normalise_split(name: str) -> str:
    """``valid``/``validation`` -> ``val``; other names unchanged."""
    return _SPLIT_ALIASES.get(name, name)


@dataclass(frozen=True)
class SplitSource:
    """The images of one split: ``name`` (None when the layout has no splits), the image files, and
    ``(list file, line)`` for each image a list file names but that does not exist."""

    name: str | None
    images: tuple[Path, ...]
    missing: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class YoloLayout:
    """What :func:`find_layout` found: the dataset ``root``, the ``layout`` kind (``ultralytics``,
    ``roboflow``, ``darknet`` or ``plain``), the ``config`` file read (data.yaml / obj.data), the class
    names and where they came from (None: to be numbered from the labels), and the splits."""

    root: Path
    layout: str
    config: Path | None
    class_names: tuple[str, ...] | None
    class_names_from: str | None
    splits: tuple[SplitSource, ...]
    keypoints: bool = False  # data.yaml has kpt_shape: lines are 'class cx cy w h' + keypoints


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: ``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (the last ``images``)."""
    parts = image.parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            return Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
    return image.with_suffix(".txt")


def find_label(image: Path) -> Path | None:
    """The label file of ``image``: by Ultralytics' rule, else beside the image (AlexeyAB darknet,
    CVAT), else pjreddie darknet's ``JPEGImages`` -> ``labels`` (its voc_label.py), else None."""
    voc_style = Path(*("labels" if p == "JPEGImages" else p for p in image.parts)).with_suffix(".txt")
    for candidate in (label_path_for(image), image.with_suffix(".txt"), voc_style):
        if candidate.is_file():
            return candidate
    return None


def _images_in(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))


def _find_below(root: Path, rel: str) -> Path | None:
    """``root/rel``, else ``root/rel`` with its leading folders dropped one by one (darknet paths are
    relative to darknet's working folder: ``data/obj_train_data/x.jpg``; exports made on Colab name
    ``/content/<dataset>/train/images``)."""
    p = Path(rel.strip())
    if p.exists() and p.is_absolute():
        return p
    parts = p.parts[1:] if p.is_absolute() else p.parts  # an absolute path from another machine too
    for k in range(len(parts)):
        candidate = root.joinpath(*parts[k:])
        if candidate.exists():
            return candidate
    return None


def _read_list(list_file: Path, root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image paths from a list file: ``./x`` is relative to the list's folder (Ultralytics), other
    relative paths to the root, then to the list's folder, then with leading folders dropped."""
    images, missing = [], []
    for line in _text(list_file).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("./"):
            found = _find_below(list_file.parent, line[2:])
        else:
            found = _find_below(root, line) or _find_below(list_file.parent, line)
        if found is None or not found.is_file():
            missing.append((str(list_file), line))
        else:
            images.append(found)
    return images, missing


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None


def _names_file(path: Path) -> tuple[str, ...]:
    names = tuple(line.strip() for line in _text(path).splitlines() if line.strip())
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: duplicate class names")
    return names


def _yaml_names(doc: dict[str, Any], where: Path) -> tuple[str, ...] | None:
    names, nc = doc.get("names"), doc.get("nc")
    if isinstance(names, dict):
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: 'names' keys must be class indices (0: person)") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise DatasetError(f"{where}: 'names' keys must be 0..{len(by_index) - 1}, got {sorted(by_index)}")
        out = tuple(by_index[k] for k in range(len(by_index)))
    elif isinstance(names, list):
        out = tuple(str(n) for n in names)
    elif names is None:
        out = None if nc is None else tuple(f"class_{i}" for i in range(int(nc)))  # Ultralytics' default
    else:
        raise DatasetError(f"{where}: 'names' must be a list or a {{index: name}} mapping")
    if out is not None and nc is not None and int(nc) != len(out):
        raise DatasetError(f"{where}: nc: {nc} but {len(out)} names")
    return out


def yaml_module() -> Any:
    """PyYAML (a dependency of convsight), imported when a data.yaml is read or written."""
    try:
        import yaml
    except ImportError:
        raise DatasetError("reading or writing data.yaml needs PyYAML: pip install pyyaml") from None
    return yaml


def _load_yaml(path: Path) -> dict[str, Any]:
    yaml = yaml_module()

    try:
        doc = yaml.safe_load(_text(path))
    except yaml.YAMLError as e:
        raise DatasetError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: expected a mapping with train/val/names keys")
    return doc


def _split_entry(entry: str, root: Path, key: str, where: Path, problems: list[Problem] | None) -> SplitSource | None:
    x = root / entry
    if not x.exists() and entry.startswith("../"):
        x = root / entry[3:]  # Ultralytics' fix for Roboflow's off-by-one '..'
    if not x.exists() and Path(entry).is_absolute():
        x = _find_below(root, entry) or x
    name = normalise_split(key)
    if x.is_dir():
        return SplitSource(name, _images_in(x))
    if x.is_file():
        images, missing = _read_list(x, root)
        return SplitSource(name, tuple(images), tuple(missing))
    reason = f"{key}: {entry!r} not found (looked for {x})"
    if problems is None:
        raise DatasetError(f"{where}: {reason}")
    problems.append(Problem(str(where), reason))
    return None


def _from_yaml(path: Path, problems: list[Problem] | None) -> YoloLayout:
    doc = _load_yaml(path)
    if "val" not in doc and "validation" in doc:
        doc["val"] = doc["validation"]
    root = path.parent
    if doc.get("path"):
        p = Path(str(doc["path"]))
        candidate = p if p.is_absolute() else path.parent / p
        root = candidate if candidate.is_dir() else path.parent
    splits: list[SplitSource] = []
    used_parent_fix = False
    for key in SPLIT_KEYS:
        value = doc.get(key)
        for entry in value if isinstance(value, list) else [value] if value else []:
            used_parent_fix |= str(entry).startswith("../") and not (root / str(entry)).exists()
            s = _split_entry(str(entry), root, key, path, problems)
            if s is not None:
                splits.append(s)
    names = _yaml_names(doc, path)
    roboflow = "roboflow" in doc or used_parent_fix
    return YoloLayout(root, "roboflow" if roboflow else "ultralytics", path, names,
                      f"{path.name} names" if names is not None else None, _merge(splits),
                      keypoints="kpt_shape" in doc)


def _read_data_file(path: Path) -> dict[str, str]:
    out = {}
    for line in _text(path).splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _from_obj_data(path: Path, problems: list[Problem] | None) -> YoloLayout:
    root = path.parent
    cfg = _read_data_file(path)
    names, source = None, None
    if cfg.get("names"):
        names_file = _find_below(root, cfg["names"])
        if names_file is None or not names_file.is_file():
            raise DatasetError(f"{path}: names = {cfg['names']} not found below {root}")
        names, source = _names_file(names_file), names_file.name
    elif (root / "obj.names").is_file():
        names, source = _names_file(root / "obj.names"), "obj.names"
    if names is not None and cfg.get("classes", "").isdigit() and int(cfg["classes"]) != len(names):
        raise DatasetError(f"{path}: classes = {cfg['classes']} but {source} has {len(names)} names")
    splits = []
    for key in ("train", "valid", "test"):
        if not cfg.get(key):
            continue
        list_file = _find_below(root, cfg[key])
        if list_file is None or not list_file.is_file():
            reason = f"{key} = {cfg[key]} not found below {root}"
            if problems is None:
                raise DatasetError(f"{path}: {reason}")
            problems.append(Problem(str(path), reason))
            continue
        images, missing = _read_list(list_file, root)
        splits.append(SplitSource(normalise_split(key), tuple(images), tuple(missing)))
    return YoloLayout(root, "darknet", path, names, source, _merge(splits))


def _merge(splits: list[SplitSource]) -> tuple[SplitSource, ...]:
    """Entries of one split joined; when every split lists the same images (``train: images`` and
    ``val: images``, common in toy datasets) the dataset has no real splits."""
    by_name: dict[str | None, SplitSource] = {}
    for s in splits:
        old = by_name.get(s.name)
        by_name[s.name] = s if old is None else SplitSource(s.name, old.images + s.images, old.missing + s.missing)
    merged = tuple(by_name.values())
    if len(merged) > 1 and len({tuple(sorted(s.images)) for s in merged}) == 1:
        return (SplitSource(None, merged[0].images, merged[0].missing),)
    return merged


def _plain_names(root: Path) -> tuple[tuple[str, ...] | None, str | None]:
    names = read_class_names(root)
    if names is not None:
        return names, CLASSES_FILE
    if (root / "obj.names").is_file():
        return _names_file(root / "obj.names"), "obj.names"
    parent = config_file(root.parent) if normalise_split(root.name) in SPLIT_KEYS else None
    if parent is not None and parent.suffix != ".data":  # one split folder of a Roboflow export
        names = _yaml_names(_load_yaml(parent), parent)
        return names, f"../{parent.name} names" if names is not None else None
    return None, None


def _split_first(root: Path) -> list[Path]:
    return [d for d in sorted(root.iterdir()) if d.is_dir() and (d / "images").is_dir()
            and normalise_split(d.name) in SPLIT_KEYS]


def config_file(root: Path) -> Path | None:
    """The data.yaml or obj.data of a dataset folder, if any."""
    for name in YAML_NAMES:
        if (root / name).is_file():
            return root / name
    if (root / "obj.data").is_file():
        return root / "obj.data"
    return None


def is_yolo_dataset(path: str | os.PathLike[str]) -> bool:
    """True for a data.yaml / obj.data file, or a folder in one of the layouts above."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".yaml", ".yml", ".data")
    if not path.is_dir():
        return False
    return (config_file(path) is not None or (path / "obj.names").is_file() and any(path.glob("obj_*_data"))
            or (path / "labels").is_dir() and (path / "images").is_dir() or bool(_split_first(path)))


def find_layout(path: str | os.PathLike[str], problems: list[Problem] | None = None) -> YoloLayout:
    """Find the layout of a YOLO dataset folder (or of its data.yaml / obj.data file)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return _from_yaml(path, problems)
        if path.suffix.lower() == ".data":
            return _from_obj_data(path, problems)
        raise DatasetError(f"{path}: expected a YOLO dataset folder, a data.yaml or an obj.data file")
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset not found")
    cfg = config_file(path)
    if cfg is not None:
        return _from_yaml(cfg, problems) if cfg.suffix != ".data" else _from_obj_data(cfg, problems)
    names, source = _plain_names(path)
    obj_dirs = sorted(path.glob("obj_*_data"))
    if obj_dirs:  # CVAT export without its obj.data: one split per obj_<subset>_data folder
        splits = [SplitSource(normalise_split(d.name[4:-5]), _images_in(d)) for d in obj_dirs]
        return YoloLayout(path, "darknet", None, names, source, _merge(splits))
    first = _split_first(path)
    if first:
        splits = [SplitSource(normalise_split(d.name), _images_in(d / "images")) for d in first]
        return YoloLayout(path, "roboflow", None, names, source, _merge(splits))
    if not (path / "images").is_dir() or not (path / "labels").is_dir():
        raise DatasetError(f"{path}: not a YOLO dataset (needs data.yaml, obj.data, or images/ and labels/ folders)")
    images = _images_in(path / "images")
    sub = [p.relative_to(path / "images").parts for p in images]
    if sub and all(len(s) > 1 and normalise_split(s[0]) in SPLIT_KEYS for s in sub):
        groups: dict[str, list[Path]] = {}
        for p, s in zip(images, sub, strict=True):
            groups.setdefault(normalise_split(s[0]), []).append(p)
        return YoloLayout(path, "plain", None, names, source, tuple(SplitSource(k, tuple(v)) for k, v in groups.items()))
    return YoloLayout(path, "plain", None, names, source, (SplitSource(None, images),))
