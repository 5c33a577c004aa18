"""TrainConfig validation, the optimizers, and every lr schedule against hand-written formulas."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from convsight.errors import ConfigError
from convsight.training.config import TrainConfig, build_optimizer, build_scheduler


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1}, "lr must be > 0, got -1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": math.nan}, "lr must be > 0, got nan"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"optimizer": "adam"}, "optimizer must be one of sgd, adamw; got 'adam'"),
        ({"schedule": "linear"}, "schedule must be one of constant, cosine, step, onecycle"),
        ({"momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"warmup_steps": -3}, "warmup_steps must be an integer >= 0, got -3"),
        ({"warmup_steps": 5, "warmup_epochs": 1}, "set warmup_steps or warmup_epochs, not both"),
        ({"gamma": 0.0}, "gamma must be in (0, 1]"),
        ({"grad_clip": 0.0}, "grad_clip must be None or > 0, got 0.0"),
        ({"seed": -1}, "seed must be an integer in [0, 2**32)"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda; got 'tpu'"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1), got 1.0"),
        ({"monitor": ""}, "monitor must be None or a metric name"),
        ({"monitor_mode": "up"}, "monitor_mode must be one of min, max"),
        ({"progress": "yes"}, "progress must be True or False"),
    ],
)
def test_invalid_values_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**kwargs)
    assert message in str(info.value)


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = TrainConfig(epochs=3, optimizer="adamw", grad_clip=1.5, monitor="map", monitor_mode="max")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown training option.*lrate"):
        TrainConfig.from_dict({"lrate": 0.1})


def test_build_optimizer() -> None:
    params = list(nn.Linear(2, 2).parameters())
    sgd = build_optimizer(params, TrainConfig(lr=0.05, momentum=0.8, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.8 and sgd.param_groups[0]["weight_decay"] == 1e-4
    adamw = build_optimizer(params, TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["lr"] == 1e-3 and adamw.param_groups[0]["weight_decay"] == 0.05


def _lrs(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The lr each optimizer step actually used, stepping the scheduler as the trainer does."""
    opt = build_optimizer([nn.Parameter(torch.zeros(1))], cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_with_linear_warmup_matches_hand_formula() -> None:
    lr, epochs, spe, warm = 0.1, 3, 4, 3
    got = _lrs(TrainConfig(lr=lr, epochs=epochs, schedule="cosine", warmup_steps=warm), spe)
    total = epochs * spe
    # the warmup ramp lr*(s+1)/(W+1), then half a cosine from lr over the remaining T-W steps
    expected = [lr * (s + 1) / (warm + 1) for s in range(warm)]
    expected += [lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))) for s in range(warm, total)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[:3] == pytest.approx([0.025, 0.05, 0.075]) and got[3] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(got[3:], got[4:]))  # strictly decreasing after warmup


def test_warmup_epochs_equals_warmup_steps() -> None:
    a = _lrs(TrainConfig(epochs=3, schedule="cosine", warmup_epochs=1), 5)
    b = _lrs(TrainConfig(epochs=3, schedule="cosine", warmup_steps=5), 5)
    assert a == b


def test_constant_and_step_schedules() -> None:
    assert _lrs(TrainConfig(lr=0.1, epochs=2, schedule="constant"), 3) == [0.1] * 6
    got = _lrs(TrainConfig(lr=0.1, epochs=3, schedule="step", step_epochs=1, gamma=0.5), 2)
    assert got == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    warm = _lrs(TrainConfig(lr=0.1, epochs=1, schedule="constant", warmup_steps=1), 3)
    assert warm == pytest.approx([0.05, 0.1, 0.1])


def test_onecycle_rises_to_peak_then_anneals() -> None:
    got = _lrs(TrainConfig(lr=0.2, epochs=2, schedule="onecycle", warmup_steps=4), 10)
    assert got[0] == pytest.approx(0.2 / 25)
    assert max(got) == pytest.approx(0.2) and got.index(max(got)) == 4
    assert got[-1] == pytest.approx(0.2 / 25e4)
    assert all(a < b for a, b in zip(got[:4], got[1:5])) and all(a > b for a, b in zip(got[4:], got[5:]))


def test_schedule_past_its_end_stays_finite() -> None:
    """Resuming with more epochs must not run a schedule off its end."""
    cfg = TrainConfig(lr=0.1, epochs=1, schedule="cosine")
    opt = build_optimizer([nn.Parameter(torch.zeros(1))], cfg)
    sched = build_scheduler(opt, cfg, 2)
    for _ in range(6):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
