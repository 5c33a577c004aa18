"""Checkpoints: a weights_only round trip that continues training exactly, RNG restore, clear errors,
atomic writes, and safetensors export."""

from __future__ import annotations

import fractions
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from convsight.errors import WeightsError
from convsight.training.checkpoint import Checkpoint, export_weights, load_checkpoint, save_checkpoint
from convsight.training.config import TrainConfig, build_optimizer, build_scheduler
from convsight.training.rng import get_rng_state, set_rng_state
from convsight.weights import read_weights


def _step(net: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler) -> None:
    x = torch.linspace(-1, 1, 12).reshape(3, 4)
    loss = net(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def _run_parts(cfg: TrainConfig) -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = build_optimizer(net.parameters(), cfg)
    return net, opt, build_scheduler(opt, cfg, steps_per_epoch=4)


def _checkpoint(
    net: nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, cfg: TrainConfig
) -> Checkpoint:
    history = [{"epoch": 1, "train_loss": 0.5, "val_loss": float("nan"), "note": None}]
    return Checkpoint(
        model=net.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(), epoch=1, global_step=3,
        config=cfg.to_dict(), history=history, rng=[get_rng_state()], best=0.5, best_epoch=1, step_losses=[0.7, 0.6, 0.5],
    )  # fmt: skip


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_round_trip_with_weights_only_continues_identically(tmp_path: Path, optimizer: str) -> None:
    cfg = TrainConfig(optimizer=optimizer, lr=0.1, epochs=2, schedule="cosine", warmup_steps=2, weight_decay=0.01)
    net, opt, sched = _run_parts(cfg)
    for _ in range(3):
        _step(net, opt, sched)
    path = save_checkpoint(_checkpoint(net, opt, sched, cfg), tmp_path / "last.pt")

    raw = torch.load(path, weights_only=True)  # the file itself needs no unpickling of code
    assert raw["epoch"] == 1 and raw["config"]["optimizer"] == optimizer

    ckpt = load_checkpoint(path)
    assert (ckpt.epoch, ckpt.global_step, ckpt.best, ckpt.best_epoch) == (1, 3, 0.5, 1)
    assert ckpt.step_losses == [0.7, 0.6, 0.5] and ckpt.history[0]["note"] is None
    assert TrainConfig.from_dict(ckpt.config) == cfg

    net2, opt2, sched2 = _run_parts(cfg)
    net2.load_state_dict(ckpt.model)
    opt2.load_state_dict(ckpt.optimizer)
    sched2.load_state_dict(ckpt.scheduler)
    for _ in range(2):  # momentum / Adam moments and the lr schedule all carried over
        _step(net, opt, sched)
        _step(net2, opt2, sched2)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


def test_model_entry_reads_as_plain_weights(tmp_path: Path) -> None:
    cfg = TrainConfig()
    net, opt, sched = _run_parts(cfg)
    path = save_checkpoint(_checkpoint(net, opt, sched, cfg), tmp_path / "best.pt")
    tensors, _ = read_weights(path)
    assert tensors.keys() == net.state_dict().keys()


def test_rng_states_restore_every_generator() -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    state = get_rng_state()
    first = (random.random(), np.random.normal(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    set_rng_state(state)
    again = (random.random(), np.random.normal(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="nope.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="garbage.pt: corrupt or not a torch checkpoint"):
        load_checkpoint(garbage)
    cfg = TrainConfig()
    good = save_checkpoint(_checkpoint(*_run_parts(cfg), cfg), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated.pt: corrupt"):
        load_checkpoint(truncated)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "weights.pt"
    torch.save(nn.Linear(2, 2).state_dict(), weights)
    with pytest.raises(WeightsError, match="not a convsight training checkpoint"):
        load_checkpoint(weights)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "x", "obj": fractions.Fraction(1, 3)}, pickled)
    with pytest.raises(WeightsError, match="refused to load: the file pickles fractions.Fraction"):
        load_checkpoint(pickled)


def test_failed_save_keeps_previous_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    cfg = TrainConfig()
    net, opt, sched = _run_parts(cfg)
    path = save_checkpoint(_checkpoint(net, opt, sched, cfg), tmp_path / "last.pt")
    before = path.read_bytes()
    bad = _checkpoint(net, opt, sched, cfg)
    object.__setattr__(bad, "history", [{"fn": lambda: 0}])  # lambdas cannot be pickled
    with pytest.raises(Exception):  # noqa: B017 (pickle's own error type)
        save_checkpoint(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_export_weights_is_safetensors_of_the_state_dict(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    path = export_weights(net, tmp_path / "model.safetensors", {"arch": "tiny"})
    loaded = load_file(str(path))
    assert loaded.keys() == net.state_dict().keys()
    for k, v in net.state_dict().items():
        assert torch.equal(loaded[k], v), k
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
