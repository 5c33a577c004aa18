"""Batches: moving them to the device, the default training step, multi-scale training (each batch
rescaled to a random size), and checking what a step returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.errors import ConfigError
from convsight.structures import Target

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


def rescale_batch(images: Tensor, targets: list[Target], size: tuple[int, int]) -> tuple[Tensor, list[Target]]:
    """``images (B, 3, H, W)`` in ``[0, 1]`` resized to ``size = (h, w)`` (bilinear, antialiased when
    shrinking, clamped) and each target's xyxy boxes scaled with them; memory layout kept."""
    h0, w0 = images.shape[-2:]
    if (h0, w0) == tuple(size):
        return images, targets
    out = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    if images.is_contiguous(memory_format=torch.channels_last):  # the bf16 step's layout
        out = out.contiguous(memory_format=torch.channels_last)
    sy, sx = size[0] / h0, size[1] / w0
    scaled = [dataclasses.replace(t, boxes=t.boxes * t.boxes.new_tensor([sx, sy, sx, sy])) for t in targets]
    return out, scaled


class MultiScaleStep:
    """Multi-scale training: each training batch ``(images (B, 3, H, W), targets)`` is rescaled
    (:func:`rescale_batch`) so that its shorter side is a random multiple of ``multiple`` in
    ``sides = (lo, hi)``, aspect kept, then goes through ``step`` (the default step). In eval mode
    (the validation loss) batches pass unchanged. The side is drawn from torch's global generator,
    which the Trainer seeds and restores on resume, so a run repeats exactly.
    """

    def __init__(self, sides: tuple[int, int], multiple: int = 32,
                 step: Any = default_step) -> None:
        lo, hi = sides
        if multiple < 1 or lo % multiple or hi % multiple or not multiple <= lo <= hi:
            raise ConfigError(f"multi-scale sides must be multiples of {multiple} with lo <= hi, got {tuple(sides)}")
        self.sides, self.multiple, self.step = (lo, hi), multiple, step
        self.last_size: tuple[int, int] | None = None  # the size of the latest training batch

    def size_for(self, hw: tuple[int, int], short: int) -> tuple[int, int]:
        """``hw`` scaled so its shorter side is ``short``, each side a multiple of ``multiple``."""
        f, m = short / min(hw), self.multiple
        return (max(m, round(hw[0] * f / m) * m), max(m, round(hw[1] * f / m) * m))

    def __call__(self, model: nn.Module, batch: Any) -> dict[str, Tensor]:
        if not model.training:
            return self.step(model, batch)
        images, targets = batch
        lo, hi = (s // self.multiple for s in self.sides)
        short = self.multiple * int(torch.randint(lo, hi + 1, ()))
        self.last_size = self.size_for(tuple(images.shape[-2:]), short)
        return self.step(model, rescale_batch(images, targets, self.last_size))


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
