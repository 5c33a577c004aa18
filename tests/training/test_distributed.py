"""torchrun's environment, and a real 2-process DDP run (gloo on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from convsight.errors import ConfigError
from convsight.training.distributed import DistInfo, env_info, init_distributed, is_distributed, resolve_device

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_process_without_torchrun(clean_env: pytest.MonkeyPatch) -> None:
    assert init_distributed() == DistInfo(rank=0, world_size=1, local_rank=0, is_main=True)
    assert not is_distributed()


def test_torchrun_env_is_read_and_checked(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WORLD_SIZE", "4")
    clean_env.setenv("RANK", "3")
    with pytest.raises(ConfigError, match="WORLD_SIZE=4 but LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set"):
        env_info()
    for name, value in (("LOCAL_RANK", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        clean_env.setenv(name, value)
    assert env_info() == DistInfo(rank=3, world_size=4, local_rank=1, is_main=False)
    clean_env.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK=4 is outside"):
        env_info()
    clean_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer, got 'two'"):
        env_info()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_two_process_ddp_keeps_ranks_in_sync(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    init0, init1, final0, final1 = (load_file(str(tmp_path / f"{n}.safetensors")) for n in ("init0", "init1", "rank0", "rank1"))
    assert any(not torch.equal(init0[k], init1[k]) for k in init0)  # the ranks started apart ...
    for k in final0:
        assert torch.equal(final0[k], final1[k]), k  # ... and end identical (broadcast + averaged grads)
    assert any(not torch.allclose(final0[k], init0[k]) for k in final0)  # training moved them

    seen = [json.loads((tmp_path / f"seen{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]["train"]) == len(seen[1]["train"]) == 2  # epochs
    for epoch0, epoch1 in zip(seen[0]["train"], seen[1]["train"], strict=True):
        assert len(epoch0) == len(epoch1) == 8  # each rank its own half of the 16 samples
        assert set(epoch0) | set(epoch1) == set(range(16))
    assert seen[0]["train"][0] != seen[0]["train"][1]  # reshuffled each epoch (set_epoch)
    no_time = [[{k: v for k, v in r.items() if k != "time_s"} for r in s["history"]] for s in seen]
    assert no_time[0] == no_time[1]  # logged losses are reduced over ranks
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "loss_curve.png", "metrics.csv", "metrics.json"]
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())["history"]] == [1, 2]
