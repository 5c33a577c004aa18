"""Demo stage: the three shipped detectors on scenes none of them saw, pictures and a scored table."""

from __future__ import annotations

import tempfile
from pathlib import Path

from convsight.io.atomic import write_json
from convsight.report import Report, Section

ARCHS = (("yolo", "YOLO"), ("ssd", "SSD"), ("faster_rcnn", "Faster R-CNN"))


def detection_stage(report: Report, out: Path, seed: int, n_eval: int = 60, n_show: int = 4) -> None:
    from convsight.detection import engine
    from convsight.detection.defaults import display_threshold, thresholds_text
    from convsight.detection.files import shipped_detector
    from convsight.detection.inference import load_for_inference, optimize_for_inference
    from convsight.io.images import save_image
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig, render_scene
    from convsight.viz import contact_sheet, draw_boxes

    cfg = SynthConfig(image_size=(256, 256))
    shown = [render_scene(cfg, seed + 1000, i) for i in range(n_show)]
    tiles, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        val = write_synthetic(Path(tmp), n_eval, cfg, seed=seed + 2000, fmt="coco", overwrite=True)
        for arch, title in ARCHS:
            if shipped_detector(arch) is None:
                continue
            model, names, _ = load_for_inference(arch, "cpu", optimize=False)
            params = sum(p.numel() for p in model.parameters())  # the trained model's, before BatchNorm is folded
            model = optimize_for_inference(model)  # as `detect eval` and `detect predict` run it
            # ms/image: the forward pass alone, median over batches of 8 (engine.model_ms_per_image),
            # the figure `detect eval` prints; no loss pass, the table shows none.
            ev = engine.evaluate(model, val, batch_size=8, loss=False)
            rows.append({"detector": title, "mAP@0.5": ev.metrics.map50, "mAP@[.5:.95]": ev.metrics.map,
                         "ms/image (batch 8)": ev.ms_per_image, "params": f"{params / 1e6:.2f}M"})
            dets = engine.predict(model, [s.image for s in shown], score_threshold=display_threshold(arch))
            tiles += [draw_boxes(s.image, d.boxes, d.labels, names, d.scores) for s, d in zip(shown, dets, strict=True)]
    save_image(contact_sheet(tiles, columns=n_show, cell=256), out / "detections.png")
    write_json(out / "detection.json", rows)
    report.add(Section(
        "Shipped detectors",
        f"The YOLO, SSD and Faster R-CNN files that ship with convsight (trained on 6000 synthetic scenes, "
        f"see the README), scored on {n_eval} fresh scenes (seed {seed + 2000}) and drawn on {n_show} more at "
        f"the scores `predict` uses (best F1 on 300 fresh scenes: {thresholds_text()}). ms/image is the model's forward "
        f"pass alone (median over batches of 8, on this machine, in this run), as `convsight detect eval` reports it.",
        images=[(report.rel(out / "detections.png"), "Rows: " + ", ".join(t for _, t in ARCHS))],
        table=rows,
    ))
