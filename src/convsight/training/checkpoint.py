"""Training checkpoints (``last.pt``, ``best.pt``) and exported weights.

A checkpoint is a ``torch.save`` of plain data only: state dicts, tensors, ints, floats, strings,
lists and dicts. It therefore loads with ``torch.load(weights_only=True)``, which never runs code
from the file. Its ``"model"`` entry is an ordinary state dict, so
:func:`convsight.weights.read_weights` reads a checkpoint's weights directly too.
Files are written to a temporary sibling and renamed: a crash never leaves half a checkpoint.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from convsight.errors import WeightsError
from convsight.io.atomic import atomic_path
from convsight.training.distributed import unwrap_model
from convsight.weights import save_state_dict

FORMAT = "convsight.training.checkpoint/1"
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")  # torch.load(weights_only=True)'s wording


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """Everything needed to continue a run exactly where it stopped.

    model/optimizer/scheduler: their ``state_dict()``; epoch: epochs completed (resume starts at
    this 0-based epoch); global_step: optimizer steps taken; config: ``TrainConfig.to_dict()``;
    history: one record per completed epoch; rng: one :func:`~convsight.training.rng.get_rng_state`
    per process (index = rank); best, best_epoch: the best monitored value so far and its 1-based
    epoch (None before any); step_losses: the total training loss of every step so far (for the loss curve).
    """

    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    epoch: int
    global_step: int
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    rng: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    step_losses: list[float] = field(default_factory=list)


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write ``ckpt`` to ``path`` atomically."""
    path = Path(path)
    payload = {"format": FORMAT, **{f.name: getattr(ckpt, f.name) for f in fields(Checkpoint)}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU, never unpickling code.

    Raises :class:`WeightsError` naming the file when it is missing, corrupt, pickles objects other
    than plain data, or is not a training checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint is not a file")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols; the error below says it all
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        unsafe = _UNSAFE_GLOBAL.search(str(e))
        if unsafe:
            raise WeightsError(f"{path}: refused to load: the file pickles {unsafe.group(1)}, not only plain data") from e
        if isinstance(e, pickle.UnpicklingError):  # torch's own text here is a page of advice
            reason = "unpickling failed"
        else:
            lines = str(e).strip().splitlines()
            reason = (lines[0] if lines else type(e).__name__)[:200]
        raise WeightsError(f"{path}: corrupt or not a torch checkpoint ({reason})") from e
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
        raise WeightsError(
            f"{path}: not a convsight training checkpoint (plain weights load with convsight.weights.read_weights)"
        )
    values = {}
    for f in fields(Checkpoint):
        if f.name not in obj:
            raise WeightsError(f"{path}: incomplete training checkpoint: no {f.name!r} entry")
        values[f.name] = obj[f.name]
    if not isinstance(values["model"], Mapping) or not all(isinstance(v, Tensor) for v in values["model"].values()):
        raise WeightsError(f"{path}: the checkpoint's 'model' entry is not a state dict")
    return Checkpoint(**values)


def export_weights(model: nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> Path:
    """Write only the model's weights (``state_dict``, unwrapped from DDP) as ``.safetensors``, atomically."""
    return save_state_dict(unwrap_model(model).state_dict(), path, metadata)
