"""``classes.txt``: the class order of a dataset folder (one name per line), shared by VOC and YOLO."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from convsight.errors import DatasetError
from convsight.io import atomic

CLASSES_FILE = "classes.txt"


def read_class_names(root: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """Names from ``root/classes.txt`` (blank lines ignored), or None when the file is absent."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file") from None
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: duplicate class names")
    return names


def write_class_names(root: str | os.PathLike[str], names: Sequence[str]) -> Path:
    for n in names:
        if not n or "\n" in n or n != n.strip():
            raise DatasetError(f"class name {n!r} cannot be stored in {CLASSES_FILE}")
    return atomic.write_text(Path(root) / CLASSES_FILE, "".join(f"{n}\n" for n in names))
