"""Demo stage: the detection lineage, every method's shipped file on scenes none of them saw.

A scored table (localization on single-object scenes, the others on multi-object scenes, and the
box-per-class prior that every method must beat), one scene detected by every method side by side,
and the three modern detectors on four more scenes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from convsight.io.atomic import write_json
from convsight.report import Report, Section

# registry name, title: the lecture's order
METHODS = (("localization", "Localization"), ("sliding_window", "Sliding window"), ("rcnn", "R-CNN"),
           ("fast_rcnn", "Fast R-CNN"), ("faster_rcnn", "Faster R-CNN"), ("yolo", "YOLO"), ("ssd", "SSD"))
MODERN = (("yolo", "YOLO"), ("ssd", "SSD"), ("faster_rcnn", "Faster R-CNN"))


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image (H, W, 3) uint8`` with ``title`` on a white strip above it."""
    import cv2

    strip = np.full((22, image.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, image])


def detection_stage(report: Report, out: Path, seed: int, n_eval: int = 40, n_show: int = 4) -> None:
    from convsight.detection import engine
    from convsight.detection.defaults import display_threshold, thresholds_text
    from convsight.detection.files import shipped_detector
    from convsight.detection.inference import load_for_inference, optimize_for_inference
    from convsight.detection.metrics import evaluate_detections
    from convsight.detection.prior import ClassPrior
    from convsight.detection.proposals import ProposalCache
    from convsight.io.images import save_image
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig, render_scene
    from convsight.io.torch_data import DetectionDataset
    from convsight.viz import contact_sheet, draw_boxes

    cfg = SynthConfig(image_size=(256, 256))
    shown = [render_scene(cfg, seed + 1000, i) for i in range(n_show)]
    proposals = ProposalCache()  # one selective search per image, shared by R-CNN and Fast R-CNN
    rows, lineage_tiles, modern_tiles, names = [], [], [], ()
    with tempfile.TemporaryDirectory() as tmp:
        scenes = write_synthetic(Path(tmp) / "scenes", n_eval, cfg, seed=seed + 2000, fmt="coco", overwrite=True)
        singles = write_synthetic(Path(tmp) / "single", n_eval, SynthConfig(image_size=(256, 256), single_object=True),
                                  seed=seed + 3000, fmt="coco", overwrite=True)
        for arch, title in METHODS:
            if shipped_detector(arch) is None:
                continue
            model, names, _ = load_for_inference(arch, "cpu", optimize=False)
            params = sum(p.numel() for p in model.parameters())  # the trained model's, before BatchNorm is folded
            model = optimize_for_inference(model)  # as `detect eval` and `detect predict` run it
            val = singles if arch == "localization" else scenes
            if hasattr(model, "proposer"):  # proposals made before the timed forward passes (the papers' convention)
                model.proposer = proposals
                data = DetectionDataset(val, size=model.image_size)  # the pixels evaluate() will hand the model
                for i in range(len(data)):
                    proposals(data[i][0])
            # ms/image: the forward pass alone, median over batches of 8 (engine.model_ms_per_image),
            # the figure `detect eval` prints; no loss pass, the table shows none.
            ev = engine.evaluate(model, val, batch_size=8, loss=False)
            rows.append({"detector": title, "scenes": "single-object" if val is singles else "multi-object",
                         "mAP@0.5": ev.metrics.map50, "mAP@[.5:.95]": ev.metrics.map,
                         "ms/image (batch 8)": ev.ms_per_image, "params": f"{params / 1e6:.2f}M"})
            threshold = display_threshold(arch)
            det = engine.predict(model, [shown[0].image], score_threshold=threshold)[0]
            lineage_tiles.append(_titled(draw_boxes(shown[0].image, det.boxes, det.labels, names, det.scores),
                                         f"{title} (score > {threshold:g})"))
            if (arch, title) in MODERN:
                dets = engine.predict(model, [s.image for s in shown], score_threshold=threshold)
                modern_tiles += [draw_boxes(s.image, d.boxes, d.labels, names, d.scores) for s, d in zip(shown, dets, strict=True)]
        for val, what in ((scenes, "multi-object"), (singles, "single-object")):
            # The prior is fitted on the very scenes it is scored on: the strongest a box-per-class
            # answer can be, so a method above it beats every such baseline.
            m = evaluate_detections(ClassPrior.fit(val).predict(val), val.images, len(val.class_names), val.class_names)
            rows.append({"detector": "box-per-class prior (baseline)", "scenes": what, "mAP@0.5": m.map50,
                         "mAP@[.5:.95]": m.map, "ms/image (batch 8)": 0.0, "params": "0"})
    if lineage_tiles:
        gt = _titled(draw_boxes(shown[0].image, shown[0].boxes, shown[0].labels, names or cfg.classes), "ground truth")
        save_image(contact_sheet([gt, *lineage_tiles], columns=4, cell=278), out / "lineage.png")
    if modern_tiles:
        save_image(contact_sheet(modern_tiles, columns=n_show, cell=256), out / "detections.png")
    write_json(out / "detection.json", rows)
    report.add(Section(
        "The detection lineage",
        f"Every method's shipped file (trained on synthetic scenes, see the README's recipes), scored on {n_eval} fresh "
        f"multi-object scenes (seed {seed + 2000}); localization, which answers one box per image, on {n_eval} fresh "
        f"single-object scenes (seed {seed + 3000}). The baseline answers every image with each class's mean box, "
        f"scored by the class's share of the boxes, fitted on the scored scenes themselves. R-CNN and Fast R-CNN are "
        f"timed with their selective-search proposals made beforehand. ms/image is the model's forward pass alone "
        f"(median over batches of 8, on this machine, in this run), as `convsight detect eval` reports it. "
        f"Pictures: boxes above each file's display score ({thresholds_text()}).",
        images=[(report.rel(out / "lineage.png"), "One scene, every method (localization can only answer one box)"),
                (report.rel(out / "detections.png"), "Rows: " + ", ".join(t for _, t in MODERN))],
        table=rows,
    ))
