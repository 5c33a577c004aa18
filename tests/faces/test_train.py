"""Training the small embedder: losses fall on synthetic identities; train -> save -> load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convsight.errors import ConfigError, DatasetError, WeightsError
from convsight.faces.small_net import SmallFaceNet, SmallNetConfig
from convsight.faces.synthetic import render_batch, write_identity_folders
from convsight.faces.train import (
    EmbedderTraining,
    FaceTrainConfig,
    IdentityImages,
    PKBatches,
    load_identity_folders,
    load_trained_embedder,
    train_embedder,
)
from convsight.faces.types import FaceEmbedder


def synthetic_batch(p: int = 4, k: int = 3, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [i for i in range(p) for _ in range(k)]
    x = render_batch(0, ids, [j for _ in range(p) for j in range(k)], size)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.tensor(ids)


@pytest.mark.parametrize("loss", ["triplet", "pairwise"])
def test_losses_fall_on_synthetic_identities(loss: str) -> None:
    torch.manual_seed(0)
    x, y = synthetic_batch()
    model = EmbedderTraining(SmallFaceNet(SmallNetConfig(width=4, chip_size=32)), loss, margin=0.2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    values = []
    for _ in range(15):
        total = sum(model(x, y).losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        values.append(float(total.detach()))
    assert np.mean(values[-5:]) < 0.6 * np.mean(values[:3])


def test_embedder_contract() -> None:
    net = SmallFaceNet(SmallNetConfig(width=4, chip_size=32)).eval()
    assert isinstance(net, FaceEmbedder) and net.dim == 128 and net.chip_size == 32
    out = net(torch.rand(3, 3, 40, 40))  # other sizes are resized to the chip size
    assert out.shape == (3, 128)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ConfigError):
        SmallNetConfig(chip_size=40)


def test_pk_batches_are_deterministic_and_balanced() -> None:
    labels = torch.arange(5).repeat_interleave(3)
    data = IdentityImages(torch.zeros(15, 3, 8, 8, dtype=torch.uint8), labels, [f"p{i}" for i in range(5)])
    ds = PKBatches(data, p=3, k=4, steps=2, seed=1)
    x, y = ds[0]
    assert x.shape == (12, 3, 8, 8) and len(ds) == 2
    assert sorted(torch.bincount(y).tolist())[-3:] == [4, 4, 4]
    assert torch.equal(y, ds[0][1])
    ds.set_epoch(1)
    assert not all(torch.equal(ds[i][1], PKBatches(data, 3, 4, 2, seed=1)[i][1]) for i in range(2))


def test_train_save_load_round_trip(tmp_path: Path) -> None:
    write_identity_folders(tmp_path / "ids", 8, 3, size=32, seed=0)
    cfg = FaceTrainConfig(p=4, k=2, epochs=2, steps=2, width=4, chip_size=32, val_fraction=0.25, val_pairs=20, progress=False)
    r = train_embedder(tmp_path / "ids", tmp_path / "emb.safetensors", cfg, work_dir=tmp_path / "run")
    assert [h["epoch"] for h in r.history] == [1, 2] and "val_accuracy" in r.history[-1]
    assert (tmp_path / "run" / "last.pt").is_file()
    net = load_trained_embedder(tmp_path / "emb.safetensors")
    assert net.embedder_id.startswith("convsight_small:") and net.embedder_id == r.embedder.embedder_id
    assert net.threshold == r.threshold and r.threshold.method == "accuracy" and "held-out" in r.threshold.source
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(net(x), r.embedder(x), atol=1e-6)
    with pytest.raises(ConfigError, match="safetensors"):
        train_embedder(tmp_path / "ids", tmp_path / "emb.pt", cfg)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least 4"):
        write_identity_folders(tmp_path / "few", 2, 2, size=32)
        load_identity_folders(tmp_path / "few", 32)
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError):
        load_trained_embedder(tmp_path / "x.safetensors")
    with pytest.raises(ConfigError, match="P >= 2"):
        FaceTrainConfig(p=1)
