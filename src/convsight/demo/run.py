"""``convsight demo``: an offline tour of every capability on bundled inputs, written to
``runs/demo/index.html`` (relative links: the folder opens from disk), one progress line per stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from convsight.console import info
from convsight.demo import detection, faces, foundation, photos, style
from convsight.errors import ConfigError
from convsight.report import Report

_MARKER = ".convsight-demo"


def prepare_out(out: str | Path) -> Path:
    """An empty ``out`` folder, marked as the demo's. Only a folder an earlier demo made (or an empty one)
    is wiped: ``--out`` pointing at the user's own files must never delete them."""
    out = Path(out)
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / _MARKER).exists()):
            raise ConfigError(f"{out}: exists and was not written by `convsight demo`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / _MARKER).write_text("written by convsight demo; the next demo run replaces this folder\n")
    return out


def run_demo(out: str | Path = "runs/demo", seed: int = 0) -> Path:
    """Run every demo stage offline and write ``out/index.html``; returns its path."""
    out = prepare_out(out)
    torch.manual_seed(seed)
    np.random.seed(seed)
    report = Report(out, "convsight demo", log=info)
    with report.stage("real objects in real photos: the ImageNet classifier, localised and slid"):
        photos.photos_stage(report, out, seed)
    with report.stage("synthetic scenes (COCO, VOC, YOLO)"):
        data = foundation.scenes_stage(report, out, seed)
    with report.stage("shipped detectors: YOLO, SSD, Faster R-CNN"):
        detection.detection_stage(report, out, seed)
    with report.stage("faces: detect, align, embed, verify, recognise"):
        faces.faces_stage(report, out, seed)
    with report.stage("style transfer: Gatys alpha sweep, feed-forward stylizer"):
        style.style_stage(report, out, seed)
    with report.stage("pretrain the tiny backbone on synthetic crops"):
        foundation.pretrain_stage(report, out, seed)
    with report.stage("evaluator on perturbed ground truth"):
        foundation.evaluator_stage(report, out, data, seed)
    page = report.write()
    info(f"demo report: {page.resolve()}")
    return page
