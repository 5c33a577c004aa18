"""Seeding and capturing every random number generator a training run draws from.

States are kept as tensors, ints, floats and lists only, so a checkpoint holding them loads with
``torch.load(weights_only=True)``: nothing is unpickled but plain data.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from convsight.errors import WeightsError


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def get_rng_state() -> dict[str, Any]:
    """The states of python ``random``, numpy, torch CPU and (when initialised) the current CUDA device."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    if kind != "MT19937":  # numpy's legacy global generator is always MT19937; fail loudly if not
        raise RuntimeError(f"unexpected numpy generator {kind!r}")
    return {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        # Only the current device: under DDP each process owns one GPU, and touching the others
        # would create a CUDA context on each of them.
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured (the CUDA state only when CUDA is in use here)."""
    try:
        py, npy = state["python"], state["numpy"]
        random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
        keys = npy["keys"].numpy().astype(np.uint32)
        np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.set_rng_state(state["cuda"][0])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"checkpoint holds a malformed random-number state ({type(e).__name__}: {e})") from e
