"""``convsight detect``: train, evaluate, predict and score object detectors."""

from __future__ import annotations

from pathlib import Path

import typer

from convsight.cli.common import JsonOption, info, out_console, print_json

app = typer.Typer(help="Object detection: the lineage from localization to YOLO and SSD.", no_args_is_help=True)


def print_metrics(metrics, title: str) -> None:  # type: ignore[no-untyped-def]
    """Overall metrics, then AP per class, as rich tables on stdout."""
    from rich.table import Table

    d = metrics.to_dict()
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    t = Table(title=title)
    for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "voc_map50"):
        t.add_column(k, justify="right")
    t.add_row(*(fmt(d[k]) for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large", "voc_map50")))
    out_console.print(t)
    c = Table(title="per class")
    for col in ("class", "AP@[.5:.95]", "AP@0.5", "VOC AP@0.5", "gt", "det"):
        c.add_column(col, justify="left" if col == "class" else "right")
    for name, v in d["per_class"].items():
        c.add_row(name, fmt(v["ap"]), fmt(v["ap50"]), fmt(v["voc_ap50"]), str(v["num_gt"]), str(v["num_det"]))
    out_console.print(c)


@app.command()
def score(
    gt: Path = typer.Argument(..., help="COCO ground truth (instances JSON; image files are not needed)."),
    preds: Path = typer.Argument(..., help="COCO results JSON: a list of {image_id, category_id, bbox, score}."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write precision-recall curves to this PNG."),
    max_dets: int = typer.Option(100, min=1, help="Detections kept per image and class (COCO: 100)."),
    as_json: bool = JsonOption,
) -> None:
    """Score a COCO results file against COCO ground truth (mAP@[.5:.95], mAP@0.5, per class)."""
    from convsight.detection.metrics import evaluate_detections
    from convsight.io.coco import read_coco_results, read_coco_with_ids

    ds, ids = read_coco_with_ids(gt)
    detections = read_coco_results(preds, ids)
    metrics = evaluate_detections(detections, ds.images, ds.num_classes, ds.class_names, max_dets=max_dets)
    if plot is not None:
        from convsight.detection.plots import plot_pr_curves

        plot_pr_curves(metrics, plot)
    if as_json:
        print_json(metrics.to_dict())
    else:
        print_metrics(metrics, f"{preds.name} vs {gt.name} ({len(ds)} images)")
    if plot is not None:
        info(f"wrote {plot}")


@app.command()
def pretrain(
    crops: Path = typer.Argument(..., help="Class-folder crops (e.g. from `convsight data synth --mode crops`)."),
    out: Path = typer.Option(Path("runs/pretrain"), "--out", "-o", help="Run folder (checkpoints, metrics, backbone.safetensors)."),
    backbone: str = typer.Option("tiny", help="Backbone to pretrain (tiny, mobilenet_v2, resnet18, ...)."),
    weights: str | None = typer.Option(None, help="Initial weights: imagenet, a .safetensors file, or none."),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(32, min=1),
    lr: float = typer.Option(3e-3),
    image_size: int = typer.Option(64, min=16, help="Crops are resized to this square size."),
    label_smoothing: float = typer.Option(0.1, min=0.0, max=1.0),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
    as_json: bool = JsonOption,
) -> None:
    """Pretrain a backbone as a classifier on crops (YOLO's first stage); keeps backbone weights only."""
    from convsight.backbones.pretrain import PretrainConfig, pretrain_backbone

    cfg = PretrainConfig(backbone=backbone, weights=weights, image_size=image_size, epochs=epochs, batch_size=batch_size,
                         lr=lr, label_smoothing=label_smoothing, seed=seed)
    r = pretrain_backbone(crops, out, cfg, resume=resume)
    doc = {"weights": str(r.weights), "val_accuracy": r.val_accuracy, "epochs": r.epochs, "classes": list(r.class_names),
           "loss_curve": str(r.loss_curve)}
    if as_json:
        print_json(doc)
    else:
        info(f"best validation accuracy {r.val_accuracy:.3f}; backbone weights: {r.weights}")
