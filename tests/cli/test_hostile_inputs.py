"""Hostile input through the command line: every case gives one clear line on stderr, exit code 2,
no traceback, and no output left behind (the ``--out``/``-o`` target of the command does not appear)."""

from __future__ import annotations

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


def _write(path: Path, data: str | bytes) -> str:
    """Write ``data`` to ``path``; returns the path as a command-line argument."""
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
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
    ("convert into non-empty folder", lambda t: ["data", "convert", str(_coco(t / "d")), str(t / "d"), "--to", "voc"], "not empty"),
    ("score: results not a list", lambda t: ["detect", "score", str(_coco(t) / "annotations.json"), _write(t / "r.json", "{}")], "JSON list"),
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
    ("eval: classes differ", lambda t: ["detect", "eval", str(_coco(t / "d", categories=[{"id": 1, "name": "other"}])), "--weights", str(_detector(t))], "differ"),
    ("pretrain: no crops", lambda t: ["detect", "pretrain", str(t / "none"), "--out", OUT], "not found"),
    ("train: bad option value", lambda t: ["detect", "train", "--arch", "toy", "--data", str(_coco(t / "d")), "--set", 'postprocess={"iou_threshold": 2}', "--out", OUT],
     "NMS IoU threshold must lie in (0, 1]"),
    ("demo over user files", lambda t: ["demo", "--out", str(Path(_write(t / "mine.txt", "x")).parent)], "not written by"),
]


@pytest.mark.parametrize("name, build, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_one_line_exit_2(cli, tmp_path, name, build, message):
    work = tmp_path / "in"
    work.mkdir()
    out = tmp_path / "out"
    args = [str(out) if a == OUT else a for a in build(work)]
    r = cli(*args)
    assert r.code == 2, (r.code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convsight: error:"), r.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in r.stderr and not out.exists()


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
