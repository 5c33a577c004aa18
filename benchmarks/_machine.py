"""The line every benchmark prints first: which machine, vector ISA, bf16 support, threads and precision.

    .venv/bin/python benchmarks/_machine.py [--precision auto]     # just the line

A timing means little without its machine: bf16 is about 2x faster than fp32 on a CPU with AVX-512
BF16 / AMX and tens of times slower on one that emulates it (issue 19), so each table says where it
came from. Benchmarks import it as ``from _machine import machine_line`` (benchmarks/ is on sys.path
when a script in it runs).

Instruction-set caps set in the environment are named in the line, so a run that emulates an
ordinary AVX2 CPU on a bigger one says so:
``ATEN_CPU_CAPABILITY=avx2`` (torch's own kernels), ``ONEDNN_MAX_CPU_ISA=AVX2`` (convolutions) and
``MKL_ENABLE_INSTRUCTIONS=AVX2`` (matmul). They cap the ISA, not the core count, caches or clock.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

from convsight.precision import cpu_capability, machine_summary, resolve_precision

ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name ("model name" in /proc/cpuinfo), else platform's; "unknown CPU" if none."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")) and ":" in line:
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def isa_caps(environ: dict[str, str] | None = None) -> str:
    """``"ONEDNN_MAX_CPU_ISA=AVX2 ..."`` for the caps set, ``""`` when none is."""
    env = os.environ if environ is None else environ
    return " ".join(f"{k}={env[k]}" for k in ISA_CAPS if env.get(k))


def machine_line(precision: str | None = "auto", device: str = "cpu") -> str:
    """One line naming the machine a benchmark ran on, e.g. ``measured on: Intel(R) Xeon(R) ..., 2 cores
    visible, torch 2.14.1, CPU capability AVX512 +AVX512_BF16 +AMX, bf16 native, 2 threads, precision
    auto -> bf16``. ``precision``: what the benchmark was asked for (the line shows what it resolves to),
    None where no network runs (COCO scoring, FAISS search)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    native = bool(machine_summary()["bf16_native"])
    caps = isa_caps()  # ONEDNN_MAX_CPU_ISA=AVX2 also turns oneDNN's bf16 check, hence `native`, off
    native_text = "bf16 native" if native else "bf16 emulated (no AVX512_BF16/AMX in use)"
    if precision is None:
        chosen = "n/a (no network runs)"
    else:
        resolved = resolve_precision(precision, device)
        chosen = f"{precision} -> {resolved}" if precision == "auto" else resolved
    parts = [cpu_model(), f"{cores} logical CPUs visible", f"torch {torch.__version__}",
             f"CPU capability {cpu_capability()}", native_text, f"{torch.get_num_threads()} threads",
             f"precision {chosen}"]
    if caps:
        parts.append(f"ISA capped: {caps}")
    if device != "cpu" and torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return "measured on: " + ", ".join(parts)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    print(machine_line(ap.parse_args().precision))
    sys.exit(0)
