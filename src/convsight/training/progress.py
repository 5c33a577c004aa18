"""The live view of a run on stderr: a progress bar with the running loss, and one line per epoch."""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any


class TrainProgress:
    """A rich progress bar on :data:`convsight.console.err_console` (stdout stays clean for results).

    When ``enabled`` is False (``config.progress`` off, or not rank 0) every method does nothing.
    """

    def __init__(self, epochs: int, enabled: bool = True) -> None:
        self.epochs = epochs
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            from convsight.console import err_console

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,  # the per-epoch summary lines stay; the bars go
            )
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps, loss="-")

    def step(self, running_loss: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, loss=f"{running_loss:.4g}")

    def end_epoch(self, record: dict[str, Any], monitor: str, improved: bool) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self._progress.console.print(summary_line(record, self.epochs, monitor, improved), highlight=False)


def summary_line(record: dict[str, Any], epochs: int, monitor: str, improved: bool) -> str:
    """``epoch 3/10  train_loss 0.412  val_loss 0.450  acc 0.81  lr 0.00952  1.2s  * best val_loss``."""
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key in ("epoch", "time_s") or "/" in key:  # per-term values live in metrics.csv
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) and math.isfinite(value) else f"{key} {value}")
    parts.append(f"{record.get('time_s', 0.0):.1f}s")
    if improved:
        parts.append(f"* best {monitor}")
    return "  ".join(parts)
