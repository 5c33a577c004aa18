"""Plots of evaluation results (PNG, written atomically, no display needed)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from convsight.detection.metrics import DetectionMetrics
from convsight.io.atomic import atomic_path
from convsight.viz import class_colour


def plot_pr_curves(metrics: DetectionMetrics, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """One precision-recall curve per class at IoU 0.5 (the monotone envelope VOC AP integrates)."""
    fig = Figure(figsize=(7, 5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for k, (name, (rec, prec)) in enumerate(metrics.pr_curves.items()):
        ap = metrics.per_class[name].voc_ap50
        if math.isnan(ap):
            continue
        env = np.maximum.accumulate(np.concatenate([prec, [0.0]])[::-1])[::-1][:-1] if len(prec) else prec
        r = np.concatenate([[0.0], rec])
        p = np.concatenate([[env[0] if len(env) else 0.0], env])
        ax.step(r, p, where="post", color=np.array(class_colour(k)) / 255 * 0.85, label=f"{name} (AP {ap:.3f})")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title(title or f"PR at IoU 0.5: VOC mAP {metrics.voc_map50:.3f}, COCO mAP@[.5:.95] {metrics.map:.3f}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
