"""``convsight style train-fast`` then ``convsight style fast``; user mistakes are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY = ("--steps", "3", "--size", "32", "--batch-size", "2", "--style-size", "48", "--channels", "8",
        "--residual-blocks", "1")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_real_app_wires_both_commands(cli) -> None:
    """The commands come from the real ``convsight`` app (no test registers them): unwiring fails here."""
    r = cli("style", "--help")
    assert r.code == 0 and "train-fast" in r.stdout and " fast " in r.stdout
    for command in ("train-fast", "fast"):
        r = cli("style", command, "--help")
        assert r.code == 0, (command, r.stderr)


def _image(path: Path, seed: int, hw: tuple[int, int] = (40, 44)) -> Path:
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 256, (*hw, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    content = tmp_path / "content"
    content.mkdir()
    for i in range(3):
        _image(content / f"c{i}.png", i)
    return {"style": _image(tmp_path / "style.png", 9, (48, 48)), "content": content,
            "photo": _image(tmp_path / "photo.jpg", 7, (37, 53)), "empty": tmp_path}


def test_train_fast_then_fast(cli, files: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    r = cli("style", "train-fast", files["style"], "--content-dir", files["content"], "--out", model, *TINY, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["steps"] == 3 and doc["model"] == str(model) and model.is_file()

    out = tmp_path / "out.png"
    r = cli("style", "fast", model, files["photo"], "-o", out)
    assert r.code == 0, r.stderr
    assert Image.open(out).size == (53, 37)  # the content's size, odd sides included
    r = cli("style", "fast", model, files["photo"], "-o", tmp_path / "small.png", "--max-size", "20")
    assert r.code == 0 and max(Image.open(tmp_path / "small.png").size) == 20


def _one_line_error(r, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convsight: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0]


def test_train_fast_errors(cli, files: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    r = cli("style", "train-fast", files["style"], "--content-dir", tmp_path / "nope", "--out", model, *TINY)
    _one_line_error(r, "folder not found")
    (tmp_path / "no_images").mkdir()
    r = cli("style", "train-fast", files["style"], "--content-dir", tmp_path / "no_images", "--out", model, *TINY)
    _one_line_error(r, "no images")
    r = cli("style", "train-fast", tmp_path / "nostyle.png", "--content-dir", files["content"], "--out", model, *TINY)
    _one_line_error(r, "nostyle.png")
    r = cli("style", "train-fast", files["style"], "--content-dir", files["content"], "--out", model, "--alpha", "2")
    _one_line_error(r, "alpha")
    assert not model.exists()


def test_fast_errors(cli, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    _one_line_error(cli("style", "fast", tmp_path / "missing.safetensors", files["photo"], "-o", out), "not found")
    _one_line_error(cli("style", "fast", "no_such_style", files["photo"], "-o", out), "shipped")
    not_a_model = tmp_path / "x.safetensors"
    not_a_model.write_bytes(b"garbage")
    _one_line_error(cli("style", "fast", not_a_model, files["photo"], "-o", out), "corrupt")
    assert not out.exists()


def test_fast_with_a_shipped_model_by_name(cli, files: dict[str, Path], tmp_path: Path) -> None:
    from convsight.style.fast import shipped_fast_stylizers

    names = shipped_fast_stylizers()
    if not names:
        pytest.skip("no fast stylizer ships in src/convsight/assets/style")
    out = tmp_path / "shipped.png"
    r = cli("style", "fast", names[0], files["photo"], "-o", out)
    assert r.code == 0, r.stderr
    assert Image.open(out).size == (53, 37)
