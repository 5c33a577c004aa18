"""benchmarks/_lineage.py: the four recipes as commands, and --train's two-worker schedule."""

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # benchmarks/ is not a package

import _lineage


def test_commands_are_the_data_then_the_four_recipes() -> None:
    cmds = _lineage.commands("runs")
    assert all(c.startswith("convsight ") and "{root}" not in c for c in cmds)
    assert [c.split()[4] for c in cmds[-4:]] == ["localize", "sliding", "rcnn", "fast-rcnn"]
    assert sum("detect pretrain" in c for c in cmds) == 1


def _fake(monkeypatch: pytest.MonkeyPatch, root: Path, fail: str | None = None) -> list[tuple[str, str, float]]:
    """Replace the subprocesses and the selective search with short sleeps; returns (event, task, time)."""
    events: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    def task_of(command: str) -> str:
        for task, commands in _lineage.DATA.items():
            if any(command == c.format(root=root) for c in commands):
                return task
        return command.split("--out")[-1].strip().split("/")[-1]  # .../train/ARCH

    def run(command: str, log: Path, threads: int | None = None) -> float:
        task = task_of(command)
        with lock:
            events.append(("start", task, time.monotonic()))
        if "synth" in command or "pretrain" in command:  # what a finished data step leaves behind
            target = Path(command.split()[3] if "synth" in command else command.split("--out")[1].split()[0])
            target.mkdir(parents=True, exist_ok=True)
            if "pretrain" in command:
                (target / "backbone.safetensors").write_bytes(b"")
        time.sleep(0.05)
        if task == fail:
            raise SystemExit(f"`{command}` failed (exit 1)")
        with lock:
            events.append(("end", task, time.monotonic()))
        return 60.0

    def fill(data: Path, folder: Path, size: int = 256, workers: int = 2) -> float:
        with lock:
            events.append(("start", "proposals", time.monotonic()))
        time.sleep(0.05)
        with lock:
            events.append(("end", "proposals", time.monotonic()))
        return 30.0

    monkeypatch.setattr(_lineage, "_run", run)
    monkeypatch.setattr(_lineage, "fill_proposals", fill)
    return events


def test_train_lineage_runs_every_task_after_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _fake(monkeypatch, tmp_path)
    weights, minutes, prep = _lineage.train_lineage(tmp_path, lambda m: None)
    assert set(weights) == set(minutes) == set(_lineage.RECIPES)
    assert all(p == tmp_path / "train" / a / "detector.safetensors" for a, p in weights.items())
    assert minutes["rcnn"] == 1.0 and prep["proposals"] == 1.0  # two 30 s scene sets
    first_start = {t: s for e, t, s in reversed(events) if e == "start"}
    last_end = {t: s for e, t, s in events if e == "end"}
    for task, needs in _lineage.TASKS.items():
        assert all(last_end[n] <= first_start[task] for n in needs), (task, needs)
    running, most = 0, 0
    for e, _, _ in sorted(events, key=lambda x: x[2]):
        running += 1 if e == "start" else -1
        most = max(most, running)
    assert most == 2  # two at a time, never more


def test_a_failed_task_stops_the_run_with_its_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch, tmp_path, fail="sliding_window")
    with pytest.raises(SystemExit, match="failed"):
        _lineage.train_lineage(tmp_path, lambda m: None)
