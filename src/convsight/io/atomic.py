"""Atomic outputs: write to a temporary sibling, then rename, so a crash or an error never leaves
half a file (or half a dataset folder) where the user expects a result."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convsight.errors import ConfigError, InputFileError


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _usual_mode(tmp: Path, dest: Path, base: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give results the mode a plain ``open`` or
    ``mkdir`` would (or the replaced file's), so other users and web servers can read them as usual."""
    mode = dest.stat().st_mode & 0o7777 if dest.exists() else base & ~_umask()
    os.chmod(tmp, mode)


@contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it replaces ``dest``, on error it is removed.

    The temporary name keeps ``dest``'s suffix so writers that dispatch on it (PIL, matplotlib,
    torch) still see ``.png`` / ``.json``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            _usual_mode(tmp, dest, 0o666)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    return write_text(dest, json.dumps(obj, indent=indent) + "\n")


@contextmanager
def atomic_dir(dest: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Build a whole output folder in a temporary sibling and move it into place at the end.

    ``dest`` may not exist yet or be empty; a non-empty ``dest`` needs ``overwrite=True`` (it is then
    replaced only once the new content is complete).
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise InputFileError(f"{dest}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise ConfigError(f"{dest}: folder is not empty (pass --overwrite to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        _usual_mode(tmp, dest, 0o777)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
