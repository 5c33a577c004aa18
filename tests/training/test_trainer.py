"""The Trainer on a tiny conv net: exact resume, determinism, eval-mode validation, output files,
divergence errors, best-checkpoint selection and moving batches to a device."""

from __future__ import annotations

import copy
import csv
import json
import math
import warnings
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from convsight.errors import ConfigError, ConvsightError, ConvsightWarning, WeightsError
from convsight.structures import Target
from convsight.training import TrainConfig, Trainer, load_checkpoint, move_to

NetFactory = Callable[..., nn.Module]


def _cfg(**kwargs: Any) -> TrainConfig:
    base = {"epochs": 4, "batch_size": 8, "lr": 0.05, "device": "cpu", "progress": False}
    return TrainConfig(**{**base, **kwargs})


def _same_params(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _accuracy(data: TensorDataset) -> Callable[[nn.Module], dict[str, float]]:
    x, y = data.tensors
    return lambda model: {"acc": (model(x).logits.argmax(1) == y).float().mean().item()}


def _without_time(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in history]


def test_resume_after_interruption_is_bit_identical(tmp_path: Path, tiny_net: NetFactory, train_data, val_data) -> None:
    """4 epochs straight == 2 epochs, a crash in epoch 3, and resuming from last.pt."""
    cfg = _cfg(schedule="cosine", warmup_steps=2, grad_clip=1.0, weight_decay=1e-3)
    straight = tiny_net(dropout=0.3)
    ref = Trainer(straight, train_data, val_data, cfg, tmp_path / "a", evaluate_fn=_accuracy(val_data)).fit()

    calls = 0

    def crash_in_epoch_3(model: nn.Module) -> dict[str, float]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # as if the run were killed after epoch 2's checkpoint
        return _accuracy(val_data)(model)

    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_net(dropout=0.3), train_data, val_data, cfg, tmp_path / "b", evaluate_fn=crash_in_epoch_3).fit()
    assert load_checkpoint(tmp_path / "b" / "last.pt").epoch == 2

    resumed = tiny_net(dropout=0.3, seed=123)  # a different init: everything must come from the checkpoint
    out = Trainer(resumed, train_data, val_data, cfg, tmp_path / "b", evaluate_fn=_accuracy(val_data)).fit(resume=True)
    assert _same_params(straight, resumed)
    assert [r["epoch"] for r in out.history] == [1, 2, 3, 4]
    assert _without_time(out.history) == _without_time(ref.history)
    assert load_checkpoint(tmp_path / "b" / "last.pt").step_losses == load_checkpoint(tmp_path / "a" / "last.pt").step_losses


def test_resume_from_path_extends_a_finished_run(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    """2 epochs with epochs=2, then resume for 2 more == 4 epochs straight (a step schedule, AdamW)."""
    cfg = _cfg(optimizer="adamw", lr=0.01, schedule="step", step_epochs=1, gamma=0.5)
    straight = tiny_net(dropout=0.2)
    Trainer(straight, train_data, None, cfg, tmp_path / "a").fit()
    first = tiny_net(dropout=0.2)
    Trainer(first, train_data, None, _cfg(**{**cfg.to_dict(), "epochs": 2}), tmp_path / "b").fit()
    assert not _same_params(straight, first)
    resumed = tiny_net(dropout=0.2, seed=7)
    result = Trainer(resumed, train_data, None, cfg, tmp_path / "c").fit(resume=tmp_path / "b" / "last.pt")
    assert _same_params(straight, resumed)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert result.monitor == "train_loss"


def test_same_seed_same_result_other_seed_differs(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    nets = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        net = tiny_net(dropout=0.3)  # same init each time: only the config's seed differs
        Trainer(net, train_data, None, _cfg(epochs=2, seed=seed), tmp_path / name).fit()
        nets.append(net)
    assert _same_params(nets[0], nets[1])
    assert not _same_params(nets[0], nets[2])


def test_validation_loss_is_computed_in_eval_mode(tmp_path: Path, tiny_net: NetFactory, train_data, val_data) -> None:
    net = tiny_net(dropout=0.5)
    result = Trainer(net, train_data, val_data, _cfg(epochs=1, batch_size=4), tmp_path).fit()
    x, y = val_data.tensors
    with torch.no_grad():
        net.eval()
        ref = net(x, y).losses  # the whole validation set at once, running BN statistics, no dropout
        train_mode = copy.deepcopy(net).train()(x, y).losses
    record = result.history[-1]
    assert record["val/cls"] == pytest.approx(ref["cls"].item(), rel=1e-5)
    assert record["val/l2"] == pytest.approx(ref["l2"].item(), rel=1e-5)
    assert record["val_loss"] == pytest.approx(sum(v.item() for v in ref.values()), rel=1e-5)
    assert abs(record["val_loss"] - sum(v.item() for v in train_mode.values())) > 1e-3
    assert net.training is False  # fit leaves the model ready for inference


def test_metrics_files_and_loss_curve(tmp_path: Path, tiny_net: NetFactory, train_data, val_data) -> None:
    cfg = _cfg(epochs=3, schedule="constant")
    result = Trainer(tiny_net(), train_data, val_data, cfg, tmp_path).fit()
    with open(result.metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    doc = json.loads(result.metrics_json.read_text())
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] == [r["epoch"] for r in doc["history"]]
    for row, rec in zip(rows, doc["history"], strict=True):
        assert {k: float(v) for k, v in row.items()} == pytest.approx({k: float(v) for k, v in rec.items()})
        assert rec["train_loss"] == pytest.approx(rec["train/cls"] + rec["train/l2"])
        assert rec["val_loss"] == pytest.approx(rec["val/cls"] + rec["val/l2"])
        assert rec["lr"] == cfg.lr and rec["time_s"] > 0
    val = [r["val_loss"] for r in doc["history"]]
    assert doc["monitor"] == "val_loss" and doc["best"] == min(val)
    assert doc["best_epoch"] == 1 + val.index(min(val)) == result.best_epoch
    image = matplotlib.image.imread(result.loss_curve)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert load_checkpoint(result.best_path).epoch == result.best_epoch
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "last.pt", "loss_curve.png", "metrics.csv", "metrics.json"]  # no temporaries


def test_training_lowers_the_loss(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    result = Trainer(tiny_net(), train_data, None, _cfg(epochs=6, lr=0.3), tmp_path).fit()
    assert result.history[-1]["train_loss"] < 0.6 * result.history[0]["train_loss"]


def test_bf16_precision_trains_in_channels_last_and_keeps_float32_weights(
    tmp_path: Path, tiny_net: NetFactory, train_data, val_data
) -> None:
    seen: list[bool] = []
    net = tiny_net()
    net.conv.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    result = Trainer(net, train_data, val_data, _cfg(epochs=6, lr=0.3, precision="bf16"), tmp_path).fit()
    assert result.history[-1]["train_loss"] < 0.6 * result.history[0]["train_loss"]
    assert all(math.isfinite(h["val_loss"]) for h in result.history)
    assert seen and all(seen)  # every forward (train and validation) got channels-last inputs
    assert all(p.dtype == torch.float32 for p in net.parameters())
    with pytest.raises(ConfigError, match="precision"):
        _cfg(precision="fp16")


class _NanAfter(nn.Module):
    """Adds a loss term that turns NaN on the n-th training forward pass."""

    def __init__(self, net: nn.Module, n: int) -> None:
        super().__init__()
        self.net, self.n, self.calls = net, n, 0

    def forward(self, x: Tensor, y: Tensor) -> Any:
        out = self.net(x, y)
        self.calls += self.training
        bad = torch.tensor(float("nan") if self.calls == self.n else 0.0)
        return type(out)(out.logits, {**out.losses, "bad": bad})


def test_nan_loss_stops_with_a_clear_error(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    model = _NanAfter(tiny_net(), n=5)  # 24 samples / batch 8 = 3 steps per epoch: epoch 2, step 2
    with pytest.raises(ConvsightError, match=r"loss term 'bad' is nan at epoch 2, step 2/3 \(global step 5\)"):
        Trainer(model, train_data, None, _cfg(), tmp_path).fit()
    assert load_checkpoint(tmp_path / "last.pt").epoch == 1  # the last good epoch is kept


def test_best_checkpoint_follows_the_monitored_metric(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    scores = iter([0.2, 0.7, 0.5])
    snapshots: list[dict[str, Tensor]] = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        snapshots.append(copy.deepcopy(model.state_dict()))
        return {"score": next(scores)}

    cfg = _cfg(epochs=3, monitor="score", monitor_mode="max")
    result = Trainer(tiny_net(), train_data, None, cfg, tmp_path, evaluate_fn=evaluate).fit()
    assert (result.best, result.best_epoch) == (0.7, 2)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.epoch == 2 and all(torch.equal(best.model[k], v) for k, v in snapshots[1].items())
    assert load_checkpoint(tmp_path / "last.pt").epoch == 3

    with pytest.raises(ConfigError, match="monitor 'map' is not among this run's records"):
        Trainer(tiny_net(), train_data, None, _cfg(epochs=1, monitor="map"), tmp_path / "x").fit()


def test_refuses_to_clobber_or_resume_nothing(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    Trainer(tiny_net(), train_data, None, _cfg(epochs=1), tmp_path).fit()
    with pytest.raises(ConfigError, match="last.pt exists: pass resume=True"):
        Trainer(tiny_net(), train_data, None, _cfg(epochs=1), tmp_path).fit()
    with pytest.raises(WeightsError, match="checkpoint not found"):
        Trainer(tiny_net(), train_data, None, _cfg(epochs=1), tmp_path / "empty").fit(resume=True)
    with pytest.raises(ConfigError, match="train_data is empty"):
        Trainer(tiny_net(), TensorDataset(torch.zeros(0, 1, 8, 8)), None, _cfg(), tmp_path / "e").fit()


class _LogitsOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


def test_models_breaking_the_contract_are_named(tmp_path: Path, train_data) -> None:
    with pytest.raises(ConfigError, match="model output Tensor has no .losses dict"):
        Trainer(_LogitsOnly(), train_data, None, _cfg(), tmp_path).fit()
    with pytest.raises(ConfigError, match="Flatten has no trainable parameters"):
        Trainer(nn.Flatten(), train_data, None, _cfg(), tmp_path).fit()


def test_progress_goes_to_stderr(
    tmp_path: Path, tiny_net: NetFactory, train_data, capsys: pytest.CaptureFixture[str]
) -> None:
    Trainer(tiny_net(), train_data, None, _cfg(epochs=2, progress=True), tmp_path).fit()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "train_loss" in captured.err


@dataclass(frozen=True)
class _Batch:
    images: Tensor
    targets: list[Target]
    name: str


def test_move_to_handles_nested_containers_and_dataclasses() -> None:
    Pair = namedtuple("Pair", "a b")
    target = Target(boxes=torch.tensor([[0.0, 0.0, 2.0, 2.0]]), labels=torch.tensor([1]), image_id=7)
    obj = {"batch": _Batch(torch.zeros(2, 3), [target], "x"), "pair": Pair(torch.ones(1), 3), "list": [torch.ones(2)]}
    moved = move_to(obj, "meta")  # a device that exists everywhere, and is never the CPU
    assert moved["batch"].images.device.type == "meta" and moved["batch"].name == "x"
    t = moved["batch"].targets[0]
    assert isinstance(t, Target) and t.image_id == 7 and t.boxes.device.type == "meta" and t.labels.device.type == "meta"
    assert isinstance(moved["pair"], Pair) and moved["pair"].a.device.type == "meta" and moved["pair"].b == 3
    assert moved["list"][0].device.type == "meta"
    assert obj["batch"].images.device.type == "cpu"  # the input is left alone


def test_resume_warns_about_changed_options_only(tmp_path: Path, tiny_net: NetFactory, train_data) -> None:
    Trainer(tiny_net(), train_data, None, _cfg(epochs=1), tmp_path).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # more epochs is what resuming is for: no warning
        Trainer(tiny_net(), train_data, None, _cfg(epochs=2), tmp_path).fit(resume=True)
    with pytest.warns(ConvsightWarning, match=r"resuming with changed options: lr 0.05 -> 0.1"):
        Trainer(tiny_net(), train_data, None, _cfg(epochs=3, lr=0.1), tmp_path).fit(resume=True)


class _PooledBN(nn.Module):
    """BatchNorm on pooled features: one value per channel and sample, so a batch of one cannot train."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.Linear(4, 3)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Any:
        from tests.training.conftest import TinyOutput

        logits = self.fc(self.bn(self.conv(x).mean((2, 3))))
        return TinyOutput(logits, {} if y is None else {"cls": nn.functional.cross_entropy(logits, y)})


def test_a_last_training_batch_of_one_is_dropped_not_a_crash(tmp_path: Path) -> None:
    from tests.training.conftest import make_data

    data = make_data(17, seed=3)  # batch 8: 8 + 8 + 1; BatchNorm1d raises on the batch of one
    result = Trainer(_PooledBN(), data, make_data(5, seed=4), _cfg(epochs=1), tmp_path).fit()
    assert len(result.history) == 1 and math.isfinite(result.history[0]["train_loss"])
