from __future__ import annotations

import pytest

from convsight.errors import DatasetError
from convsight.io.class_names import read_class_names, write_class_names


def test_round_trip_and_absent(tmp_path):
    assert read_class_names(tmp_path) is None
    write_class_names(tmp_path, ["cat", "traffic light"])
    assert read_class_names(tmp_path) == ("cat", "traffic light")


def test_blank_lines_ignored_duplicates_rejected(tmp_path):
    (tmp_path / "classes.txt").write_text("a\n\nb\n")
    assert read_class_names(tmp_path) == ("a", "b")
    (tmp_path / "classes.txt").write_text("a\na\n")
    with pytest.raises(DatasetError, match="duplicate"):
        read_class_names(tmp_path)


def test_binary_file_and_unstorable_names(tmp_path):
    (tmp_path / "classes.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DatasetError, match="UTF-8"):
        read_class_names(tmp_path)
    for bad in ["", " lead", "two\nlines"]:
        with pytest.raises(DatasetError):
            write_class_names(tmp_path / "x", [bad])
