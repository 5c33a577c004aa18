"""Round trips between COCO, VOC and YOLO lose nothing, including images without boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convsight.errors import ConfigError, DatasetError
from convsight.io.formats import (
    FORMATS,
    convert_dataset,
    detect_format,
    read_dataset,
    write_dataset,
)

from .conftest import make_set


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_each_format(tmp_path, random_set, fmt):
    write_dataset(random_set, tmp_path, fmt)
    back = read_dataset(tmp_path, fmt)
    assert back.same_as(random_set), back.differences(random_set)
    assert sum(len(im) == 0 for im in back) == sum(len(im) == 0 for im in random_set) > 0


def test_all_three_formats_in_one_folder_agree(tmp_path, random_set):
    for fmt in FORMATS:
        write_dataset(random_set, tmp_path, fmt)
    sets = [read_dataset(tmp_path, fmt) for fmt in FORMATS]
    for s in sets:
        assert s.same_as(random_set)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), chain=st.permutations(list(FORMATS)), quantum=st.sampled_from([1.0, 1 / 64, None]))
def test_conversion_chains_are_lossless(tmp_path_factory, seed, chain, quantum):
    root = tmp_path_factory.mktemp("chain")
    original = make_set(root / "src", np.random.default_rng(seed), n_images=4, quantum=quantum)
    write_dataset(original, root / "src", chain[0])
    current, src = original, root / "src"
    for k, fmt in enumerate(chain[1:] + [chain[0]]):
        dst = root / f"step{k}"
        convert_dataset(src, dst, fmt)
        current, src = read_dataset(dst, fmt), dst
    # Paths move with each copy; compare everything else image by image (names are kept).
    a = sorted(original, key=lambda im: im.path.name)
    b = sorted(current, key=lambda im: im.path.name)
    assert current.class_names == original.class_names
    for x, y in zip(a, b, strict=True):
        assert x.path.name == y.path.name and (x.width, x.height) == (y.width, y.height)
        assert np.array_equal(x.boxes.numpy(), y.boxes.numpy()), (x.boxes, y.boxes)
        assert np.array_equal(x.labels.numpy(), y.labels.numpy())


def test_detect_format(tmp_path, random_set):
    with pytest.raises(DatasetError, match="no dataset found"):
        detect_format(tmp_path)
    write_dataset(random_set, tmp_path, "yolo")
    assert detect_format(tmp_path) == "yolo"
    write_dataset(random_set, tmp_path, "voc")
    assert detect_format(tmp_path) == "voc"
    write_dataset(random_set, tmp_path, "coco")
    assert detect_format(tmp_path) == "coco"
    assert detect_format(tmp_path / "annotations.json") == "coco"
    with pytest.raises(DatasetError, match="not found"):
        detect_format(tmp_path / "nope")
    with pytest.raises(ConfigError, match="unknown dataset format"):
        read_dataset(tmp_path, "pascal")


def test_convert_refuses_non_empty_destination_and_leaves_nothing_half_written(tmp_path, random_set):
    write_dataset(random_set, tmp_path, "coco")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        convert_dataset(tmp_path, tmp_path / "dst", "voc")
    # A failing conversion (an image file missing) leaves no destination folder behind.
    next(iter(random_set)).path.unlink()
    with pytest.raises(DatasetError, match="image file not found"):
        convert_dataset(tmp_path, tmp_path / "dst2", "yolo")
    assert not (tmp_path / "dst2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_coco_category_ids_need_not_be_contiguous(tmp_path, random_set):
    write_dataset(random_set, tmp_path, "coco")
    doc = json.loads((tmp_path / "annotations.json").read_text())
    for c in doc["categories"]:
        c["id"] *= 10
    for a in doc["annotations"]:
        a["category_id"] *= 10
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    assert read_dataset(tmp_path).same_as(random_set)
