"""Hostile input through the command line: every case gives one clear line on stderr, exit code 2,
no traceback, and no output left behind.

"No output left behind" is checked two ways, so that it can fail for every case: each command that
has an output option points it at ``OUT`` (a path that must not appear), and the command runs in a
fresh working directory inside ``tmp_path`` whose whole tree (inputs, an existing target folder, the
cwd where default outputs such as ``runs/...`` would land) must be byte-for-byte the same afterwards.
The convert cases give an existing target (a file, a non-empty folder, a folder with ``--overwrite``
and a broken source), and the demo a folder of the user's, that must be left exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

OUT = "OUT"  # placeholder for the command's output path
# Cases whose output is not OUT: verify and info have no output option (only the unchanged tree, cwd
# included, shows that nothing was written); convert and demo are given an existing file or folder of
# the user's as their output, which the unchanged tree shows was left as it was.
NOT_OUT = {("data", "verify"), ("data", "info"), ("data", "convert"), ("demo", "--out")}


def _write(path: Path, data: str | bytes) -> str:
    """Write ``data`` to ``path``; returns the path as a command-line argument."""
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


def _user_folder(path: Path) -> str:
    """A folder of the user's own files (an existing convert target that must survive untouched)."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    (path / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return str(path)


def _huge_png(path: Path) -> str:
    Image.new("1", (30000, 30000)).save(path)  # tiny on disk, 900 megapixels decoded
    return str(path)


def _plain_weights(root: Path) -> str:
    save_file({"w": torch.zeros(2)}, str(root / "b.safetensors"))  # valid safetensors, no detector metadata
    return str(root / "b.safetensors")


def _jpeg(path: Path) -> Path:
    buf = BytesIO()
    Image.fromarray(np.zeros((48, 48, 3), np.uint8) + 99).save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return path


def _coco(root: Path, **changes: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _jpeg(root / "a.jpg")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 48, "height": 48}],
           "categories": [{"id": 1, "name": "thing"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 20]}]}
    doc.update(changes)
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def _detector(root: Path) -> Path:
    import tests.detection.conftest  # noqa: F401  (registers the toy detector)
    from convsight.detection.build import build_detector
    from convsight.detection.serialize import save_detector

    return save_detector(build_detector("toy", 1, image_size=(32, 32)), root / "toy.safetensors", ["thing"])


def _nan_detector(root: Path) -> Path:
    from safetensors import safe_open

    path = _detector(root)
    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["box"][0, 0] = float("nan")
    save_file(tensors, str(path), metadata=meta)
    return path


class Evil:
    def __reduce__(self):  # noqa: ANN204 - what a malicious checkpoint does
        return (print, ("pwned",))


def _pickle_ckpt(root: Path, protocol: int = 2) -> Path:
    path = root / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": {"w": torch.zeros(1)}, "x": Evil()}, protocol=protocol))
    return path


def _truncated(root: Path) -> Path:
    path = root / "t.jpg"
    path.write_bytes(_jpeg(root / "x.jpg").read_bytes()[:200])
    return path


Case = tuple[str, Callable[[Path], list[str]], str]
CASES: list[Case] = [
    ("truncated jpeg", lambda t: ["data", "verify", str(_truncated(t))], "truncated"),
    ("zero-byte file", lambda t: ["data", "verify", _write(t / "z.jpg", b"")], "empty file"),
    ("text named .png", lambda t: ["data", "verify", _write(t / "x.png", "hello")], "not an image"),
    ("30000x30000 png", lambda t: ["data", "verify", _huge_png(t / "h.png")], "too large"),
    ("missing image", lambda t: ["data", "verify", str(t / "nope.jpg")], "not found"),
    ("empty folder", lambda t: ["data", "verify", str(t)], "no images"),
    ("coco not json", lambda t: ["data", "info", _write(t / "annotations.json", "{oops")], "not valid JSON"),
    ("coco missing key", lambda t: ["data", "info", str(_coco(t, categories=[{"id": 1}]))], "missing key 'name'"),
    ("coco box outside", lambda t: ["data", "info", str(_coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 40, 30, 30]}]))], "outside"),
    ("coco negative size", lambda t: ["data", "info", str(_coco(t, annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, -5, 5]}]))], "negative"),
    ("coco unknown image id", lambda t: ["data", "info", str(_coco(t, annotations=[{"id": 1, "image_id": 7, "category_id": 1, "bbox": [4, 4, 5, 5]}]))], "image"),
    ("unknown dataset layout", lambda t: ["data", "info", str(Path(_write(t / "readme.txt", "x")).parent)], "no dataset found"),
    ("convert into a file", lambda t: ["data", "convert", str(_coco(t / "d")), _write(t / "f.txt", "x"), "--to", "voc"], "not a folder"),
    ("convert into non-empty folder", lambda t: ["data", "convert", str(_coco(t / "d")), _user_folder(t / "target"), "--to", "voc"], "not empty"),
    ("convert into itself", lambda t: ["data", "convert", str(_coco(t / "d")), str(t / "d"), "--to", "voc"], "not empty"),
    ("convert --overwrite, broken source", lambda t: ["data", "convert", str(Path(_write(t / "annotations.json", "{oops")).parent),
                                                      _user_folder(t / "target"), "--to", "voc", "--overwrite"], "not valid JSON"),
    ("score: results not a list", lambda t: ["detect", "score", str(_coco(t) / "annotations.json"), _write(t / "r.json", "{}"),
                                             "--plot", OUT], "JSON list"),
    ("weights file missing", lambda t: ["detect", "predict", str(_jpeg(t / "a.jpg")), "--weights", str(t / "w.safetensors"), "--out", OUT], "not found"),
    ("truncated safetensors", lambda t: ["detect", "predict", str(_jpeg(t / "a.jpg")), "--weights",
                                     _write(t / "w.safetensors", _detector(t).read_bytes()[:64]), "--out", OUT], "corrupt"),
    ("NaN in weights", lambda t: ["detect", "predict", str(_jpeg(t / "a.jpg")), "--weights", str(_nan_detector(t)), "--out", OUT], "NaN"),
    ("backbone file as detector", lambda t: ["detect", "predict", str(_jpeg(t / "a.jpg")), "--weights", _plain_weights(t),
                                           "--out", OUT], "not a convsight detector"),
    ("pickle with code", lambda t: ["detect", "predict", str(_jpeg(t / "a.jpg")), "--weights", str(_pickle_ckpt(t)), "--out", OUT], "refused"),
    ("pickle, protocol 4", lambda t: ["detect", "predict", str(_jpeg(t / "a.jpg")), "--weights", str(_pickle_ckpt(t, 4)), "--out", OUT],
     "objects other than tensors"),
    ("predict on a broken image", lambda t: ["detect", "predict", _write(t / "x.png", "no"), "--weights", str(_detector(t)),
                                             "--out", OUT], "not an image"),
    # a dataset may hold some of the detector's classes (matched by name), not one it lacks
    ("eval: a class the detector lacks", lambda t: ["detect", "eval", str(_coco(t / "d", categories=[{"id": 1, "name": "other"}])),
                                                    "--weights", str(_detector(t)), "--plot", OUT],
     "classes ['other'] are not among the detector's"),
    ("pretrain: no crops", lambda t: ["detect", "pretrain", str(t / "none"), "--out", OUT], "not found"),
    ("train: bad option value", lambda t: ["detect", "train", "--arch", "toy", "--data", str(_coco(t / "d")), "--set", 'postprocess={"iou_threshold": 2}', "--out", OUT],
     "NMS IoU threshold must lie in (0, 1]"),
    ("demo over user files", lambda t: ["demo", "--out", str(Path(_write(t / "mine.txt", "x")).parent)], "not written by"),
]


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> the sha256 of its bytes ("dir" for folders)."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name, build, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_one_line_exit_2(cli, tmp_path, monkeypatch, name, build, message):
    work, cwd = tmp_path / "in", tmp_path / "cwd"
    work.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # default output folders (runs/...) would appear here
    out = tmp_path / "out"
    args = [str(out) if a == OUT else a for a in build(work)]
    if tuple(args[:2]) not in NOT_OUT:
        assert str(out) in args, f"{name}: point the command's output option at OUT"
    before = _tree(tmp_path)
    r = cli(*args)
    assert r.code == 2, (r.code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convsight: error:"), r.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists(), f"{name}: output {out} left behind"
    after = _tree(tmp_path)
    assert after == before, f"{name}: files changed: {sorted(set(after.items()) ^ set(before.items()))}"


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
