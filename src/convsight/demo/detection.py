"""Demo stage: the three shipped detectors on scenes none of them saw, pictures and a scored table."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from convsight.io.atomic import write_json
from convsight.report import Report, Section

ARCHS = (("yolo", "YOLO"), ("ssd", "SSD"), ("faster_rcnn", "Faster R-CNN"))


def detection_stage(report: Report, out: Path, seed: int, n_eval: int = 60, n_show: int = 4) -> None:
    from convsight.detection import engine
    from convsight.detection.defaults import display_threshold, thresholds_text
    from convsight.detection.inference import optimize_for_inference
    from convsight.detection.outputs import shipped_detector
    from convsight.detection.serialize import load_detector
    from convsight.io.images import save_image, to_tensor
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig, render_scene
    from convsight.viz import contact_sheet, draw_boxes

    cfg = SynthConfig(image_size=(256, 256))
    shown = [render_scene(cfg, seed + 1000, i) for i in range(n_show)]
    tiles, rows = [], []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        val = write_synthetic(Path(tmp), n_eval, cfg, seed=seed + 2000, fmt="coco", overwrite=True)
        for arch, title in ARCHS:
            path = shipped_detector(arch)
            if path is None:
                continue
            model, names = load_detector(path)
            params = sum(p.numel() for p in model.parameters())  # before BatchNorm is folded away
            ev = engine.evaluate(optimize_for_inference(model), val, batch_size=8)  # as `detect eval` runs it
            rows.append({"detector": title, "mAP@0.5": ev.metrics.map50, "mAP@[.5:.95]": ev.metrics.map,
                         "ms/image (batch 8)": ev.ms_per_image, "params": f"{params / 1e6:.2f}M"})
            with engine.thresholds(model, score=display_threshold(arch)):
                dets = engine.predict(model, [to_tensor(s.image) for s in shown])
            tiles += [draw_boxes(s.image, d.boxes, d.labels, names, d.scores) for s, d in zip(shown, dets, strict=True)]
    save_image(contact_sheet(tiles, columns=n_show, cell=256), out / "detections.png")
    write_json(out / "detection.json", rows)
    report.add(Section(
        "Shipped detectors",
        f"The YOLO, SSD and Faster R-CNN files that ship with convsight (trained on 6000 synthetic scenes, "
        f"see the README), scored on {n_eval} fresh scenes (seed {seed + 2000}) and drawn on {n_show} more at "
        f"the scores `predict` uses (best F1 on 300 fresh scenes: {thresholds_text()}); timings are as measured in this run. The same as `convsight detect eval` / `convsight detect predict`.",
        images=[(report.rel(out / "detections.png"), "Rows: " + ", ".join(t for _, t in ARCHS))],
        table=rows,
    ))
