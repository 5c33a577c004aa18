"""The training configuration, and the optimizer and learning-rate schedule it describes.

Every schedule is a per-step multiplier ``factor(step)`` on ``lr`` (a :class:`~torch.optim.lr_scheduler.LambdaLR`),
so one code path serves them all, resuming restores them exactly, and extending ``epochs`` on resume
never runs a schedule off its end. ``step`` counts optimizer steps from 0; the lr used for step ``s``
is ``lr * factor(s)``:

- warmup (any schedule), ``s < W``: ``factor = (s + 1) / (W + 1)``, a linear ramp that reaches 1 at ``s = W``;
- ``constant``: 1 after warmup;
- ``cosine``: ``0.5 * (1 + cos(pi * p))`` with ``p = (s - W) / (T - W)`` (T = total steps), clamped to ``p <= 1``;
- ``step``: multiplied by ``gamma`` every ``step_epochs`` epochs (counted from step 0);
- ``onecycle``: cosine up from ``lr / 25`` to ``lr`` over the warmup (30 % of ``T`` when no warmup is
  set), then cosine down to ``lr / 25e4`` at the last step (Smith & Topin's 1cycle, lr only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from convsight.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine", "step", "onecycle")
DEVICES = ("auto", "cpu", "cuda")
MODES = ("min", "max")
PRECISIONS = ("fp32", "bf16", "auto")

# 1cycle's customary start and end fractions of the peak lr (torch's OneCycleLR defaults)
_ONECYCLE_START = 1 / 25
_ONECYCLE_END = 1 / (25 * 1e4)
_ONECYCLE_PCT = 0.3


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, schedule, data loading, device and what decides the best checkpoint.

    epochs: passes over the training data; batch_size: samples per step (per process under DDP).
    optimizer: ``"sgd"`` (with ``momentum``) or ``"adamw"``; weight_decay applies to every parameter.
    schedule: ``"constant" | "cosine" | "step" | "onecycle"`` (see the module docstring), with a
    linear warmup of ``warmup_steps`` steps or ``warmup_epochs`` epochs (at most one of them set);
    ``step_epochs``/``gamma`` shape the ``step`` schedule. grad_clip: max global gradient L2 norm, or None.
    seed: seeds python, numpy, torch and the data order. device: ``"auto"`` picks CUDA when present.
    label_smoothing: for classification losses (:func:`convsight.training.losses.classification_loss`).
    monitor: the per-epoch record key deciding ``best.pt`` (None: ``val_loss`` when there is
    validation data, else ``train_loss``), with monitor_mode ``"min"`` or ``"max"``.
    progress: show a progress bar and a summary line per epoch on stderr.
    precision: ``"fp32"``, or ``"bf16"``: the training step's forward runs under bfloat16 autocast with
    the model and 4-D inputs in channels-last layout (weights, optimizer and losses stay float32); on
    CPUs with BF16 instructions (AVX-512 BF16 / AMX) a step is about 2x faster, elsewhere bf16 is
    emulated and slower. ``"auto"``: bf16 where the training device runs it natively, else fp32
    (:func:`convsight.precision.resolve_precision`, decided when :meth:`Trainer.fit` starts).
    """

    epochs: int = 10
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    warmup_epochs: int = 0
    step_epochs: int = 10
    gamma: float = 0.1
    grad_clip: float | None = None
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    label_smoothing: float = 0.0
    monitor: str | None = None
    monitor_mode: str = "min"
    progress: bool = True
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "step_epochs"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("warmup_steps", "warmup_epochs", "num_workers"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if self.warmup_steps and self.warmup_epochs:
            raise ConfigError(
                f"set warmup_steps or warmup_epochs, not both (got {self.warmup_steps} and {self.warmup_epochs})"
            )
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("device", self.device, DEVICES)
        _choice("monitor_mode", self.monitor_mode, MODES)
        _choice("precision", self.precision, PRECISIONS)
        if not _is_num(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not _is_num(self.momentum) or not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not _is_num(self.gamma) or not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if self.grad_clip is not None and (not _is_num(self.grad_clip) or self.grad_clip <= 0):
            raise ConfigError(f"grad_clip must be None or > 0, got {self.grad_clip!r}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:  # numpy's seed range
            raise ConfigError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not _is_num(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.monitor is not None and (not isinstance(self.monitor, str) or not self.monitor):
            raise ConfigError(f"monitor must be None or a metric name, got {self.monitor!r}")
        if not isinstance(self.progress, bool):
            raise ConfigError(f"progress must be True or False, got {self.progress!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (str, int, float, bool, None): safe for JSON and ``torch.load(weights_only=True)``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(values))

    def warmup(self, steps_per_epoch: int) -> int:
        """Warmup length in optimizer steps."""
        return self.warmup_steps or self.warmup_epochs * steps_per_epoch


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], cfg: TrainConfig) -> Optimizer:
    """SGD (momentum ``cfg.momentum``) or AdamW, at ``cfg.lr`` with ``cfg.weight_decay``."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """``step -> multiplier on cfg.lr`` for the configured schedule (a pure function; see module doc)."""
    if steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup(steps_per_epoch)
    decay_every = cfg.step_epochs * steps_per_epoch

    def ramp(s: int) -> float:
        return (s + 1) / (warm + 1) if s < warm else 1.0

    if cfg.schedule == "constant":
        return ramp
    if cfg.schedule == "step":
        return lambda s: ramp(s) * cfg.gamma ** (s // decay_every)
    if cfg.schedule == "cosine":

        def cosine(s: int) -> float:
            if s < warm:
                return ramp(s)
            p = min(1.0, (s - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * p))

        return cosine
    rise = warm or max(1, round(_ONECYCLE_PCT * total))

    def onecycle(s: int) -> float:
        if s < rise:
            return _ONECYCLE_START + (1 - _ONECYCLE_START) * 0.5 * (1 - math.cos(math.pi * s / rise))
        p = min(1.0, (s - rise) / max(1, total - 1 - rise))
        return _ONECYCLE_END + (1 - _ONECYCLE_END) * 0.5 * (1 + math.cos(math.pi * p))

    return onecycle


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """A per-step scheduler (call ``.step()`` after every ``optimizer.step()``) for ``cfg.schedule``."""
    return LambdaLR(optimizer, lr_factor(cfg, steps_per_epoch))
