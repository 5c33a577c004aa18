from __future__ import annotations

import json
import os
import stat

import pytest

from convsight.errors import ConfigError, InputFileError
from convsight.io import atomic


def test_write_json_and_text(tmp_path):
    atomic.write_json(tmp_path / "sub" / "a.json", {"x": 1})
    assert json.loads((tmp_path / "sub" / "a.json").read_text()) == {"x": 1}
    atomic.write_text(tmp_path / "b.txt", "é")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "é"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    dest = tmp_path / "out.png"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(dest) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_new_files_get_the_umask_mode_not_private(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic.write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_replaced_file_keeps_its_mode(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("a")
    p.chmod(0o640)
    atomic.write_text(p, "b")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "b"


def test_atomic_dir_builds_then_moves(tmp_path):
    dest = tmp_path / "ds"
    with atomic.atomic_dir(dest) as tmp:
        (tmp / "a").write_text("1")
        assert not dest.exists()
    assert (dest / "a").read_text() == "1"
    with pytest.raises(ConfigError, match="not empty"), atomic.atomic_dir(dest):
        pass
    with atomic.atomic_dir(dest, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_dir_failure_keeps_old_content(tmp_path):
    dest = tmp_path / "ds"
    dest.mkdir()
    (dest / "keep").write_text("k")
    with pytest.raises(RuntimeError), atomic.atomic_dir(dest, overwrite=True) as tmp:
        (tmp / "new").write_text("n")
        raise RuntimeError
    assert sorted(p.name for p in dest.iterdir()) == ["keep"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_atomic_dir_on_a_file_is_an_input_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputFileError), atomic.atomic_dir(tmp_path / "f"):
        pass
