"""benchmarks/_machine.py: the line every benchmark prints first (issue 19)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # benchmarks/ is not a package

import _machine  # noqa: E402

import convsight.precision as precision  # noqa: E402

# /proc/cpuinfo as Linux writes it: x86 prints "model name\t: ..." per processor (arch/x86/kernel/cpu/proc.c,
# show_cpuinfo); arm64 prints no model name, only "CPU implementer", "CPU part"... (arch/arm64/kernel/cpuinfo.c).
X86 = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
       "model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 8\nflags\t\t: fpu avx2 avx512f amx_tile\n\n"
       "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n")
ARM64 = ("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"
         "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n")


def test_cpu_model_reads_x86_cpuinfo_and_falls_back_elsewhere(tmp_path, monkeypatch) -> None:
    (tmp_path / "x86").write_text(X86)
    assert _machine.cpu_model(tmp_path / "x86") == "Intel(R) Xeon(R) Platinum 8480+"
    (tmp_path / "arm").write_text(ARM64)
    monkeypatch.setattr(_machine.platform, "processor", lambda: "")
    monkeypatch.setattr(_machine.platform, "machine", lambda: "aarch64")
    assert _machine.cpu_model(tmp_path / "arm") == "aarch64"
    assert _machine.cpu_model(tmp_path / "missing") == "aarch64"


def test_isa_caps_name_only_what_is_set() -> None:
    assert _machine.isa_caps({}) == ""
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "HOME": "/root"}
    assert _machine.isa_caps(env) == "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"


@pytest.mark.parametrize("native, resolved, says", [(True, "bf16", "bf16 native"), (False, "fp32", "bf16 emulated")])
def test_machine_line_names_capability_threads_and_the_resolved_precision(monkeypatch, native, resolved, says) -> None:
    monkeypatch.setattr(precision, "_native_bf16", lambda kind: native)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    line = _machine.machine_line("auto")
    assert line.startswith("measured on: ")
    assert f"precision auto -> {resolved}" in line and says in line
    assert f"CPU capability {precision.cpu_capability()}" in line and " threads" in line
    assert "precision n/a" in _machine.machine_line(None)


def test_an_isa_cap_in_the_environment_is_named(monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert _machine.machine_line("fp32").endswith("ISA capped: ONEDNN_MAX_CPU_ISA=AVX2")
