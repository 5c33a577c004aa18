"""What the training progress reporter writes on the stderr console, and when: a live bar with the
step count and running loss during an epoch, one summary line at the end of each epoch (the bars go,
the lines stay), nothing at all when disabled, and nothing on stdout."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import pytest
from rich.console import Console

import convsight.console
from convsight.training.progress import TrainProgress, summary_line


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The stderr console replaced by a plain (non-terminal) one writing into a buffer, as in a log."""
    buf = io.StringIO()
    monkeypatch.setattr(convsight.console, "err_console", Console(file=buf, force_terminal=False, width=200))
    return buf


def _lines(buf: io.StringIO) -> list[str]:
    """The buffer's non-blank lines (rich ends a live display on a non-terminal with an empty line)."""
    return [line for line in buf.getvalue().splitlines() if line.strip()]


def test_summary_line_formats_and_skips_per_term_values():
    line = summary_line({"epoch": 3, "train_loss": 0.41234, "train/cls": 0.2, "acc": math.nan, "time_s": 1.23},
                        epochs=10, monitor="val_loss", improved=True)
    assert line == "epoch 3/10  train_loss 0.4123  acc nan  1.2s  * best val_loss"


def test_disabled_progress_writes_nothing(console: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    with TrainProgress(2, enabled=False) as p:
        p.start_epoch(0, 3)
        p.step(1.0)
        p.end_epoch({"epoch": 1, "train_loss": 1.0, "time_s": 0.1}, "train_loss", True)
    assert console.getvalue() == ""
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_one_summary_line_at_the_end_of_each_epoch(console: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    first = {"epoch": 1, "train_loss": 0.5, "time_s": 0.1}
    second = {"epoch": 2, "train_loss": 0.75, "time_s": 0.2}
    with TrainProgress(2) as p:
        p.start_epoch(0, 2)
        p.step(0.5)
        p.step(0.25)
        assert "epoch 1/2 " not in console.getvalue()  # no line before the epoch ends
        p.end_epoch(first, "train_loss", True)
        assert _lines(console) == [summary_line(first, 2, "train_loss", True)]
        p.start_epoch(1, 2)
        p.step(0.75)
        p.end_epoch(second, "train_loss", False)
    # the transient bars leave nothing behind in a log: exactly the two epoch lines, the second unmarked
    assert _lines(console) == ["epoch 1/2  train_loss 0.5  0.1s  * best train_loss",
                               "epoch 2/2  train_loss 0.75  0.2s"]
    assert capsys.readouterr().out == ""


def test_the_live_bar_shows_steps_and_running_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(convsight.console, "err_console", Console(file=buf, force_terminal=True, width=200))
    with TrainProgress(3) as p:
        p.start_epoch(0, 4)
        p.step(0.5)
        p.step(0.125)
        deadline = time.monotonic() + 10.0  # the bar redraws ten times a second on its own thread
        while not ("2/4" in buf.getvalue() and "loss 0.125" in buf.getvalue()) and time.monotonic() < deadline:
            time.sleep(0.05)
        drawn = buf.getvalue()
        assert "epoch 1/3" in drawn and "2/4" in drawn and "loss 0.125" in drawn, drawn
        p.end_epoch({"epoch": 1, "train_loss": 0.125, "time_s": 0.1}, "train_loss", True)
    assert "epoch 1/3  train_loss 0.125  0.1s  * best train_loss" in buf.getvalue()


def test_the_trainer_reports_each_finished_epoch(console: io.StringIO, tmp_path: Path, tiny_net, train_data,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from convsight.training import TrainConfig, Trainer

    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, device="cpu", progress=True)
    r = Trainer(tiny_net(), train_data, None, cfg, tmp_path).fit()
    best, expected = math.inf, []
    for record in r.history:  # the monitored value (train_loss, minimised) marks the improving epochs
        improved = record[r.monitor] < best
        best = min(best, record[r.monitor])
        expected.append(summary_line(record, 3, r.monitor, improved))
    # The first line also names the precision and the throughput (issue 19); images/s is read back.
    rate = float(_lines(console)[0].split("images_per_s ")[1].split()[0])
    expected[0] = summary_line({**r.history[0], "precision": "fp32", "images_per_s": rate}, 3, r.monitor, True)
    assert _lines(console) == expected
    assert capsys.readouterr().out == ""
    quiet = Trainer(tiny_net(), train_data, None, TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False),
                    tmp_path / "quiet").fit()
    assert quiet.history and _lines(console) == expected  # progress=False: no more lines
