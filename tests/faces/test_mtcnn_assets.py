"""MTCNN's weights ship inside convsight (assets/mtcnn), so a plain ``pip install convsight`` detects
faces without facenet-pytorch (whose metadata pins torch < 2.3).

The reference is facenet-pytorch 2.6.0's own ``data/pnet.pt``, ``rnet.pt``, ``onet.pt``: the Makefile
installs that package with ``--no-deps`` for this comparison only; without it those tests skip.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from convsight.errors import WeightsError
from convsight.faces import mtcnn
from convsight.faces.mtcnn import MTCNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NETS = ("pnet", "rnet", "onet")
ASSETS = Path(str(importlib.resources.files("convsight").joinpath("assets/mtcnn")))


def facenet_data() -> Path:
    """facenet-pytorch's data/ folder (located, not imported); skip when the package is absent."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        pytest.skip("facenet-pytorch (the reference, installed by `make` with --no-deps) is not installed")
    return Path(spec.origin).parent / "data"


def from_facenet_files() -> MTCNN:
    """The detector as it was loaded before the weights shipped: from facenet-pytorch's .pt files."""
    model, folder = MTCNN(), facenet_data()
    for name in NETS:
        state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        getattr(model, name).load_state_dict(state, strict=True)
    return model.to(memory_format=torch.channels_last).eval()


def test_the_assets_ship_with_facenet_pytorchs_licence() -> None:
    assert sorted(p.name for p in ASSETS.iterdir()) == ["LICENSE", "NOTICE", "onet.safetensors", "pnet.safetensors",
                                                        "rnet.safetensors"]
    licence = (ASSETS / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "Copyright (c) 2019 Timothy Esler" in licence
    assert sum(p.stat().st_size for p in ASSETS.glob("*.safetensors")) < 2.1e6  # ~2 MB, as the issue says


def test_the_shipped_tensors_are_facenet_pytorchs_bit_for_bit() -> None:
    folder = facenet_data()
    for name in NETS:
        source = folder / f"{name}.pt"
        theirs = torch.load(source, map_location="cpu", weights_only=True)
        with safe_open(str(mtcnn.weights_file(name)), framework="pt") as f:
            ours = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            meta = f.metadata()
        assert ours.keys() == theirs.keys()
        for k, v in theirs.items():
            assert ours[k].dtype == v.dtype and torch.equal(ours[k], v), f"{name}.{k}"
        assert meta["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()  # provenance recorded
        assert meta["source"].endswith(f"facenet_pytorch/data/{name}.pt")


def test_detections_are_identical_to_the_facenet_files() -> None:
    import skimage.data

    photos = [torch.from_numpy(skimage.data.astronaut().copy()).permute(2, 0, 1).float() / 255,
              torch.from_numpy(skimage.data.chelsea().copy()).permute(2, 0, 1).float() / 255]
    ours, theirs = MTCNN.pretrained()(photos), from_facenet_files()(photos)
    assert [len(d) for d in ours] == [1, 0]  # the astronaut's face; the cat is not a face
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)
        assert torch.equal(a.landmarks, b.landmarks)


def test_pretrained_needs_no_facenet_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # as if not installed
    assert importlib.util.find_spec("facenet_pytorch") is None
    model = MTCNN.pretrained()
    assert torch.equal(model.onet.dense6_3.weight,
                       _tensor(mtcnn.weights_file("onet"), "dense6_3.weight"))


def _tensor(path: Path, key: str) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor(key)


def test_a_missing_asset_says_how_to_repair_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mtcnn, "ASSET_DIR", "assets/not-there")
    with pytest.raises(WeightsError, match=r"pnet weights are missing .*pip install --force-reinstall convsight$"):
        MTCNN.pretrained()
