"""Which arithmetic precision and how many threads a run uses, chosen from the machine it runs on.

``precision="auto"`` (every command's default) means bfloat16 only where the hardware runs it
natively, and float32 otherwise, so ``auto`` is never slower than fp32:

- CPU: oneDNN must offer bf16 (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``) *and*, on x86, the
  CPU must have AVX-512 BF16 or AMX instructions. oneDNN also "supports" bf16 on plain AVX-512 (and
  torch falls back to reference kernels on AVX2), but there it is emulated: measured on an AVX2
  machine (issue 19), a Gatys loss evaluation took 43x longer in bf16 than in fp32. On other
  architectures (aarch64) oneDNN's check already means the native BF16 extension.
- CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later).

The capability probe runs once per process (it asks torch, it does not benchmark). An explicit
``"bf16"`` on a device without native bf16 is honoured, with one :class:`ConvsightWarning` saying
why it will be slow.
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import torch

from convsight.errors import ConfigError, ConvsightWarning

PRECISIONS = ("fp32", "bf16", "auto")

_warned: set[str] = set()  # device types already warned about emulated bf16 (one line per process)


def _device_type(device: str | torch.device) -> str:
    """``"auto"`` -> ``"cuda"`` when present else ``"cpu"``; ``"cuda:1"`` / torch.device -> ``"cuda"``."""
    kind = torch.device(device).type if isinstance(device, torch.device) else str(device).split(":")[0]
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return kind


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def cpu_capability() -> str:
    """Torch's vector ISA for CPU kernels (``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``...) plus the bf16
    extensions present, e.g. ``"AVX512 +AVX512_BF16 +AMX"``."""
    try:
        base = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        base = "unknown"
    extra = []
    for name, probe in (("AVX512_BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported")):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                extra.append(name)
        except RuntimeError:
            pass
    return " ".join([base] + [f"+{e}" for e in extra])


@functools.cache
def _native_bf16(device_type: str) -> bool:
    """Does ``device_type`` ("cpu" / "cuda") run bfloat16 natively? Asked once per process."""
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_type != "cpu":
        return False
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):
        return False
    if not _x86():
        return True  # oneDNN's check on aarch64 is the BF16 extension itself
    capability = cpu_capability()
    return "+AVX512_BF16" in capability or "+AMX" in capability


def resolve_precision(requested: str = "auto", device: str | torch.device = "cpu") -> str:
    """``"auto" | "fp32" | "bf16"`` -> the precision to run: ``"fp32"`` or ``"bf16"``.

    ``"auto"`` is bf16 only where ``device`` runs it natively. An explicit ``"bf16"`` without native
    support is kept, with one warning per process. Anything else raises :class:`ConfigError`.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"precision={requested!r}: expected one of {', '.join(PRECISIONS)}")
    kind = _device_type(device)
    if requested == "auto":
        return "bf16" if _native_bf16(kind) else "fp32"
    if requested == "bf16" and not _native_bf16(kind) and kind not in _warned:
        _warned.add(kind)
        what = f"this CPU ({cpu_capability()}; native bf16 needs AVX512_BF16 or AMX)" if kind == "cpu" else f"this {kind} device"
        warnings.warn(f"bf16 is emulated on {what} and will be slower than fp32; "
                      f"use --precision auto or fp32", ConvsightWarning, stacklevel=2)
    return requested


def default_threads() -> int:
    """Physical cores available to this process: the CPUs it may run on divided by the hardware
    threads per core (hyper-threads share one core's vector units, so more threads than cores only
    adds contention to convolution-bound work)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        logical = os.cpu_count() or 1
    per_core = 1
    try:
        siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text().strip()
        per_core = sum(int(b) - int(a) + 1 if "-" in part else 1
                       for part in siblings.split(",") for a, _, b in [part.partition("-")])
    except (OSError, ValueError):
        pass
    return max(1, logical // max(1, per_core))


def configure_threads() -> int:
    """Set torch's intra-op threads to :func:`default_threads` unless the user chose (``OMP_NUM_THREADS``);
    returns the count in use."""
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(default_threads())
    return torch.get_num_threads()


def machine_summary() -> dict[str, Any]:
    """What ``convsight version --json`` reports about this machine's speed choices."""
    native = _native_bf16("cpu")
    return {
        "cpu_capability": cpu_capability(),
        "bf16_native": native,
        "precision_auto": resolve_precision("auto", "auto"),  # what a command with --device auto runs
        "threads": default_threads(),
    }
