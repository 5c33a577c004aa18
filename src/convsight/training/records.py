"""What a run leaves in its folder every epoch: ``metrics.csv``, ``metrics.json`` and ``loss_curve.png``.

All three are rewritten whole (atomically) after each epoch, so they always describe the run so far,
and a resumed run continues them from the checkpoint's history.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convsight.io.atomic import atomic_path, write_json, write_text

# TensorBoard's default: weight of the running average, enough to read a trend through batch noise.
SMOOTHING = 0.6


def _plain(v: Any) -> Any:
    """JSON-safe: non-finite floats become null (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def columns(history: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of every record, in first-seen order (later epochs may add metrics)."""
    seen: dict[str, None] = {}
    for record in history:
        seen.update(dict.fromkeys(record))
    return list(seen)


def write_metrics(
    out_dir: Path, history: Sequence[dict[str, Any]], monitor: str, mode: str, best: float | None, best_epoch: int | None
) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (one row per epoch) and ``metrics.json`` (the same plus the monitor)."""
    cols = columns(history)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow({k: record.get(k, "") for k in cols})
    csv_path = write_text(out_dir / "metrics.csv", buf.getvalue())
    doc = {
        "monitor": monitor,
        "mode": mode,
        "best": _plain(best),
        "best_epoch": best_epoch,
        "history": [{k: _plain(v) for k, v in record.items()} for record in history],
    }
    json_path = write_json(out_dir / "metrics.json", doc)
    return csv_path, json_path


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """Exponential moving average with bias correction (the first points are not pulled towards 0)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


def plot_loss_curve(
    path: Path, history: Sequence[dict[str, Any]], step_losses: Sequence[float], steps_per_epoch: int
) -> Path:
    """Train loss per step (faint, plus smoothed) and train/val loss per epoch, x in epochs."""
    from matplotlib.figure import Figure  # heavy; only when a run actually plots

    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.add_subplot()
    if step_losses:
        x = [(i + 1) / steps_per_epoch for i in range(len(step_losses))]
        ax.plot(x, step_losses, color="tab:blue", alpha=0.2, lw=0.8, label="train (step)")
        ax.plot(x, smooth(step_losses), color="tab:blue", lw=1.0, label="train (step, smoothed)")
    epochs = [r["epoch"] for r in history]
    for key, colour in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
        if any(key in r for r in history):
            ys = [r.get(key, math.nan) for r in history]
            ax.plot(epochs, ys, "o-", color=colour, lw=1.8, ms=4, label=f"{key.split('_')[0]} (epoch mean)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
