"""Batches: moving them to the device, the default training step, and checking what a step returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from convsight.errors import ConfigError

T = TypeVar("T")


def move_to(obj: T, device: torch.device | str) -> T:
    """``obj`` with every tensor inside moved to ``device``: tensors, lists, tuples (named too),
    dicts and dataclass instances (rebuilt with :func:`dataclasses.replace`); anything else as is."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)  # type: ignore[return-value]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: move_to(getattr(obj, f.name), device) for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)  # type: ignore[return-value]
    if isinstance(obj, Mapping):
        return {k: move_to(v, device) for k, v in obj.items()}  # type: ignore[return-value]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(move_to(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to(v, device) for v in obj)  # type: ignore[return-value]
    return obj


def default_step(model: nn.Module, batch: Any) -> dict[str, Tensor]:
    """``model(inputs, targets).losses`` for a batch ``(inputs, targets)``."""
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise ConfigError(f"the default step needs batches (inputs, targets), got {type(batch).__name__}; pass step_fn")
    inputs, targets = batch
    out = model(inputs, targets)
    losses = getattr(out, "losses", None)
    if not isinstance(losses, Mapping):
        raise ConfigError(f"model output {type(out).__name__} has no .losses dict; return one or pass step_fn")
    return dict(losses)


def batch_size(batch: Any) -> int:
    """Samples in a batch (the inputs' first dimension or list length), to weight per-batch means."""
    inputs = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(inputs, Tensor) and inputs.ndim > 0:
        return int(inputs.shape[0])
    return len(inputs) if isinstance(inputs, (list, tuple)) else 1


def check_losses(losses: Mapping[str, Tensor]) -> None:
    """Raise :class:`ConfigError` unless ``losses`` is a non-empty dict of scalar tensors."""
    if not losses:
        raise ConfigError("the step returned no loss terms (were targets passed to the model?)")
    for name, value in losses.items():
        if not isinstance(value, Tensor) or value.ndim != 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ConfigError(f"loss term {name!r} must be a scalar tensor, got {shape}")
