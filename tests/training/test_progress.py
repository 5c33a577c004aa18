from __future__ import annotations

import math

from convsight.training.progress import TrainProgress, summary_line


def test_summary_line_formats_and_skips_per_term_values():
    line = summary_line({"epoch": 3, "train_loss": 0.41234, "train/cls": 0.2, "acc": math.nan, "time_s": 1.23},
                        epochs=10, monitor="val_loss", improved=True)
    assert line == "epoch 3/10  train_loss 0.4123  acc nan  1.2s  * best val_loss"


def test_disabled_progress_does_nothing():
    with TrainProgress(2, enabled=False) as p:
        p.start_epoch(0, 3)
        p.step(1.0)
        p.end_epoch({"epoch": 1}, "val_loss", False)


def test_enabled_progress_prints_epoch_lines_on_stderr(capsys):
    with TrainProgress(1) as p:
        p.start_epoch(0, 2)
        p.step(0.5)
        p.step(0.25)
        p.end_epoch({"epoch": 1, "train_loss": 0.25, "time_s": 0.1}, "train_loss", True)
    out = capsys.readouterr()
    assert out.out == "" and "epoch 1/1  train_loss 0.25" in out.err
