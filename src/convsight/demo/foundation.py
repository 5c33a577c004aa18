"""Demo stages for the foundation: synthetic scenes in all three formats, a small backbone pretrained
as a classifier on synthetic crops through the shared Trainer (YOLO's first stage), and what the
evaluator reports for localisation noise."""

from __future__ import annotations

from pathlib import Path

import torch

from convsight.io.atomic import write_json
from convsight.report import Report, Section


def scenes_stage(report: Report, out: Path, seed: int) -> Path:
    from convsight.io.formats import read_dataset, write_dataset
    from convsight.io.images import load_image, save_image
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig
    from convsight.viz import contact_sheet, draw_boxes

    data = out / "data" / "scenes"
    ds = write_synthetic(data, 48, SynthConfig(image_size=(256, 256)), seed=seed, fmt="coco", overwrite=True)
    write_dataset(ds, data, "voc")
    write_dataset(ds, data, "yolo")
    same = all(read_dataset(data, f).same_as(ds) for f in ("coco", "voc", "yolo"))
    tiles = [draw_boxes(load_image(im.path), im.boxes, im.labels, ds.class_names) for im in ds.images[:12]]
    save_image(contact_sheet(tiles, columns=4, cell=240), out / "scenes.png")
    report.add(Section(
        "Synthetic scenes",
        f"{len(ds)} scenes, {ds.num_boxes} boxes, {sum(len(i) == 0 for i in ds)} images without objects; "
        f"written as COCO, VOC and YOLO in {report.rel(data)}; the three read back identical: {same}.",
        images=[(report.rel(out / "scenes.png"), "The first 12 scenes with their ground-truth boxes")],
    ))
    return data


def pretrain_stage(report: Report, out: Path, seed: int) -> None:
    from convsight.backbones.pretrain import PretrainConfig, pretrain_backbone
    from convsight.io.synth_writer import write_crops
    from convsight.io.synthetic import SynthConfig

    crops = out / "data" / "crops"
    counts = write_crops(crops, 400, SynthConfig(image_size=(192, 192), min_objects=1), seed=seed + 1, crop_size=40, overwrite=True)
    cfg = PretrainConfig(backbone="tiny", epochs=10, batch_size=32, image_size=40, seed=seed, progress=False)
    result = pretrain_backbone(crops, out / "pretrain", cfg)
    report.add(Section(
        "Backbone pretraining (YOLO's first stage)",
        f"The project's small CNN trained as a {len(counts)}-way classifier (shapes + background) on "
        f"{sum(counts.values())} synthetic crops with a temporary pooling + FC head, through the shared Trainer. "
        f"Validation accuracy {result.val_accuracy:.3f} after {result.epochs} epochs; backbone weights: "
        f"{report.rel(result.weights)}.",
        images=[(report.rel(result.loss_curve), "Training and validation loss")],
        table=[{"class": k, "crops": v} for k, v in counts.items()],
    ))


def evaluator_stage(report: Report, out: Path, data: Path, seed: int) -> None:
    from convsight.detection.metrics import evaluate_detections
    from convsight.detection.plots import plot_pr_curves
    from convsight.io.formats import read_dataset
    from convsight.structures import Detections

    ds = read_dataset(data, "coco")
    rows = []
    for noise in (0.0, 0.05, 0.15):
        g = torch.Generator().manual_seed(seed)  # same drops, scores and false boxes at every noise level
        preds = []
        for im in ds.images:
            b = im.boxes
            wh = (b[:, 2:] - b[:, :2]).repeat(1, 2)
            jitter = torch.randn(b.shape, generator=g) * noise * wh
            keep = torch.rand(len(b), generator=g) > 0.1  # miss 10% of objects
            scores = torch.rand(len(b), generator=g)
            # plus one false box per image, at a random place, class and score
            xy = torch.rand(2, generator=g) * torch.tensor([im.width * 0.8, im.height * 0.8])
            fp = torch.cat([xy, xy + 8 + torch.rand(2, generator=g) * 40])[None]
            fl = torch.randint(0, ds.num_classes, (1,), generator=g)
            preds.append(Detections(torch.cat([(b + jitter)[keep], fp]), torch.cat([scores[keep], torch.rand(1, generator=g)]),
                                    torch.cat([im.labels[keep], fl])))
        m = evaluate_detections(preds, ds.images, num_classes=ds.num_classes, class_names=ds.class_names)
        rows.append({"box noise (x size)": noise, "mAP@0.5 (VOC)": m.voc_map50, "mAP@0.5": m.map50, "mAP@[.5:.95]": m.map})
        if noise == 0.05:
            plot_pr_curves(m, out / "pr_curves.png")
    report.add(Section(
        "Evaluator: what localisation noise costs",
        "Not a detector: the ground truth itself with Gaussian box noise, 10% of objects dropped, one false "
        "box per image and random scores, scored by convsight's evaluator (equal to pycocotools' COCOeval within 1e-4, tested). "
        "COCO's mAP@[.5:.95] punishes sloppy boxes far more than VOC's mAP@0.5.",
        images=[("pr_curves.png", "Precision-recall per class at IoU 0.5 (noise 0.05)")],
        table=rows,
    ))
    write_json(out / "evaluator.json", rows)
