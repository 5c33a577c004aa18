"""Distributed data parallel through ``torchrun``: who am I, and the few collectives the trainer needs.

Launch any training script with ``torchrun --nproc_per_node N script.py``; torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and :func:`init_distributed`
joins the process group (``gloo`` on CPU, ``nccl`` on CUDA). Without those variables everything here
is a no-op for a single process, so the same code runs with and without torchrun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from convsight.errors import ConfigError

T = TypeVar("T")
_REQUIRED_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: global rank, number of processes, rank on this machine, and
    whether it is rank 0 (the one that writes files)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True


def _env_int(name: str, default: str | None = None) -> int:
    raw = os.environ.get(name, default)
    if raw is None:
        raise ConfigError(f"environment variable {name} is not set (launch with torchrun, which sets it)")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


def env_info() -> DistInfo:
    """The job layout torchrun's environment variables describe (a single process when absent)."""
    world = _env_int("WORLD_SIZE", "1")
    if world < 1:
        raise ConfigError(f"environment variable WORLD_SIZE must be >= 1, got {world}")
    if world == 1:
        return DistInfo()
    missing = [name for name in _REQUIRED_ENV if name not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set (launch with torchrun)")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if not 0 <= rank < world:
        raise ConfigError(f"environment variable RANK={rank} is outside [0, WORLD_SIZE={world})")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, is_main=rank == 0)


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (once; later calls just report it).

    backend: ``"gloo"`` or ``"nccl"``; default ``nccl`` when CUDA is available, else ``gloo``. For a
    single process (no torchrun) nothing is initialised and ``DistInfo(0, 1, 0, True)`` is returned.
    """
    info = env_info()
    if info.world_size == 1:
        return info
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed support; run with a single process")
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def cleanup() -> None:
    """Leave the process group (no-op when none is active)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA (this process's GPU) when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available here; use 'cpu' or 'auto'")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")



def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a :class:`DistributedDataParallel` wrapper (or the module itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over all processes, in place (identity for one process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every process (picklable objects; identity for one process)."""
    if not is_distributed():
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: T) -> list[T]:
    """Every process's ``obj``, indexed by rank (``[obj]`` for one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every process (no-op for one process)."""
    if is_distributed():
        dist.barrier()
