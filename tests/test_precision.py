"""``--precision auto`` (issue 19): bf16 only where the device runs it natively, one warning for an
explicit bf16 that will be emulated, ConfigError for anything else, physical-core thread counts,
and the trainer resolving ``auto`` when a run starts."""

from __future__ import annotations

import warnings
from collections import namedtuple

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import convsight.precision as P
from convsight.errors import ConfigError, ConvsightWarning


@pytest.fixture(autouse=True)
def _fresh_probe():
    """Each test decides the capability itself: no cached probe or remembered warning leaks across."""
    P._native_bf16.cache_clear()
    P._warned.clear()
    yield
    P._native_bf16.cache_clear()
    P._warned.clear()


def _native(monkeypatch: pytest.MonkeyPatch, value: bool) -> None:
    monkeypatch.setattr(P, "_native_bf16", lambda device_type: value)


def _fake_cpu(monkeypatch: pytest.MonkeyPatch, capability: str, mkldnn_bf16: bool, avx512_bf16: bool, amx: bool) -> None:
    """torch's own capability checks answering as a given x86 CPU would."""
    monkeypatch.setattr(P.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: mkldnn_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_where_native(monkeypatch, native, expected) -> None:
    _native(monkeypatch, native)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        assert P.resolve_precision("auto", "cpu") == expected
        assert P.resolve_precision() == expected  # the default request is auto
    assert P.resolve_precision("fp32", "cpu") == "fp32"  # an explicit fp32 is never promoted


# The three CPU classes of issue 19: an AVX2 laptop (torch reports mkldnn bf16 unsupported), an
# AVX-512 server without the BF16 extension (oneDNN emulates bf16), and a Sapphire Rapids-class CPU.
CPUS = [
    ("AVX2", False, False, False, "fp32"),
    ("AVX512", True, False, False, "fp32"),
    ("AVX512", True, True, False, "bf16"),
    ("AVX512", True, True, True, "bf16"),
]


@pytest.mark.parametrize("capability, mkldnn_bf16, avx512_bf16, amx, expected", CPUS)
def test_probe_reads_torchs_capability_checks(monkeypatch, capability, mkldnn_bf16, avx512_bf16, amx, expected) -> None:
    _fake_cpu(monkeypatch, capability, mkldnn_bf16, avx512_bf16, amx)
    assert P.resolve_precision("auto", "cpu") == expected
    assert P.machine_summary()["bf16_native"] is (expected == "bf16")
    assert P.cpu_capability().split()[0] == capability


def test_probe_runs_once_per_process(monkeypatch) -> None:
    calls = []
    _fake_cpu(monkeypatch, "AVX2", False, False, False)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: calls.append(1) or True)
    for _ in range(3):
        P.resolve_precision("auto", "cpu")
    assert len(calls) == 1


def test_probe_without_the_mkldnn_op_is_not_native(monkeypatch) -> None:
    _fake_cpu(monkeypatch, "AVX2", False, False, False)
    monkeypatch.delattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported")

    def missing() -> bool:
        raise AttributeError("no such op")

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", missing)
    assert P.resolve_precision("auto", "cpu") == "fp32"


def test_explicit_bf16_without_native_support_warns_once(monkeypatch) -> None:
    _fake_cpu(monkeypatch, "AVX2", False, False, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # count every call, not python's once-per-location default
        assert P.resolve_precision("bf16", "cpu") == "bf16"  # honoured, not silently replaced
        assert P.resolve_precision("bf16", "cpu") == "bf16"
    ours = [w for w in caught if issubclass(w.category, ConvsightWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "\n" not in message and "emulated" in message and "slower than fp32" in message and "AVX2" in message


def test_explicit_bf16_with_native_support_is_silent(monkeypatch) -> None:
    _native(monkeypatch, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert P.resolve_precision("bf16", "cpu") == "bf16"


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", None])
def test_unknown_precision_is_a_config_error_listing_the_choices(bad) -> None:
    with pytest.raises(ConfigError) as e:
        P.resolve_precision(bad, "cpu")  # type: ignore[arg-type]
    assert all(choice in str(e.value) for choice in ("fp32", "bf16", "auto"))


def test_device_auto_and_cuda_ask_the_right_probe(monkeypatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(P, "_native_bf16", lambda kind: asked.append(kind) or kind == "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert P.resolve_precision("auto", "auto") == "bf16"
    assert P.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert P.resolve_precision("auto", "cuda:0") == "bf16"
    assert asked == ["cuda", "cpu", "cuda"]


@pytest.mark.parametrize("siblings, cpus, expected", [("0-1", 8, 4), ("0,4", 8, 4), ("0", 2, 2), (None, 3, 3)])
def test_default_threads_counts_physical_cores(monkeypatch, siblings, cpus, expected) -> None:
    def read_text(self) -> str:
        if siblings is None:
            raise OSError("not readable")
        return siblings + "\n"

    monkeypatch.setattr(P.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr(P.Path, "read_text", read_text)
    assert P.default_threads() == expected


Out = namedtuple("Out", "losses")


class _Net(nn.Module):
    """One conv and a linear head; ``model(x, y).losses`` as the trainer's default step expects."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Out:
        return Out({"ce": nn.functional.cross_entropy(self.fc(self.conv(x).mean((2, 3))), y)})


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_trainer_resolves_auto_when_the_run_starts(monkeypatch, tmp_path, native, expected) -> None:
    """...and its first progress line (epoch 1's summary) names the precision and the images/s."""
    import io

    from rich.console import Console

    import convsight.console
    from convsight.training import TrainConfig, Trainer

    log = io.StringIO()
    monkeypatch.setattr(convsight.console, "err_console", Console(file=log, force_terminal=False, width=200))

    _native(monkeypatch, native)
    autocast: list[bool] = []
    net = _Net()
    net.conv.register_forward_pre_hook(lambda m, args: autocast.append(torch.is_autocast_enabled("cpu")))
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(8, 1, 6, 6, generator=g), torch.randint(0, 2, (8,), generator=g))
    cfg = TrainConfig(epochs=2, batch_size=4, device="cpu", progress=True, precision="auto")
    trainer = Trainer(net, data, None, cfg, tmp_path)
    trainer.fit()
    assert trainer.precision == expected
    assert autocast and all(a is (expected == "bf16") for a in autocast)
    first, second = [line for line in log.getvalue().splitlines() if line.startswith("epoch ")]
    assert f"precision {expected}" in first
    assert float(first.split("images_per_s ")[1].split()[0]) > 0
    assert "precision" not in second and "images_per_s" not in second  # said once, not every epoch


def test_configs_accept_auto_and_the_cli_defaults_to_it() -> None:
    """Library configs keep their fp32 default (recorded results stay as they were); every command's
    ``--precision`` defaults to auto, so a CPU without native bf16 runs fp32 unless told otherwise."""
    import inspect

    from convsight.cli import detect, style
    from convsight.style.gatys import GatysConfig
    from convsight.training import TrainConfig

    assert TrainConfig(precision="auto").precision == "auto"
    assert GatysConfig(precision="auto").precision == "auto"
    for make in (lambda: TrainConfig(precision="fp16"), lambda: GatysConfig(precision="fp16")):
        with pytest.raises(ConfigError, match="auto"):
            make()
    for command in (detect.train, style.run_cmd, style.sweep_cmd):
        assert inspect.signature(command).parameters["precision"].default.default == "auto", command.__name__
