"""``convsight detect``: train, evaluate, predict and score object detectors."""

from __future__ import annotations

from pathlib import Path

import typer

from convsight.cli.common import JsonOption, info, out_console, print_json
from convsight.detection.defaults import DEFAULT_ARCH, thresholds_text
from convsight.detection.files import canonical_arch

app = typer.Typer(help="Object detection: the lineage from localization to YOLO and SSD.", no_args_is_help=True)


def print_metrics(metrics, title: str) -> None:  # type: ignore[no-untyped-def]
    """COCO's twelve numbers (AP row, AR row), VOC mAP@0.5 (all-point and 11-point), then AP per
    class, as rich tables on stdout. Column names are the JSON keys."""
    from rich.table import Table

    d = metrics.to_dict()
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    rows = (("AP", ("map", "map50", "map75", "map_small", "map_medium", "map_large")),
            ("AR", ("mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large")))
    for n, (kind, keys) in enumerate(rows):
        t = Table(title=f"{title}\nCOCO {kind}" if n == 0 else f"COCO {kind}")
        for k in keys:
            t.add_column(k, justify="right")
        t.add_row(*(fmt(d[k]) for k in keys))
        out_console.print(t)
    v = Table(title=f"VOC, IoU 0.5 (difficult objects {'counted' if d['use_difficult'] else 'ignored'})")
    for k in ("voc_map50", "voc07_map50"):
        v.add_column(k, justify="right")
    v.add_row(fmt(d["voc_map50"]), fmt(d["voc07_map50"]))
    out_console.print(v)
    c = Table(title="per class")
    for col in ("class", "AP@[.5:.95]", "AP@0.5", "VOC AP@0.5", "VOC07 AP@0.5", "gt", "det"):
        c.add_column(col, justify="left" if col == "class" else "right")
    for name, v in d["per_class"].items():
        c.add_row(name, fmt(v["ap"]), fmt(v["ap50"]), fmt(v["voc_ap50"]), fmt(v["voc07_ap50"]), str(v["num_gt"]), str(v["num_det"]))
    out_console.print(c)


USE_DIFFICULT_HELP = "Count VOC 'difficult' objects in VOC AP (the devkit ignores them; COCO's numbers never use the flag)."


@app.command()
def score(
    gt: Path = typer.Argument(..., help="Ground truth: a COCO instances JSON (image files are not needed) or any dataset folder."),
    preds: Path = typer.Argument(..., help="COCO results JSON: a list of {image_id, category_id, bbox, score}, with GT's own ids."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write precision-recall curves to this PNG."),
    max_dets: int = typer.Option(100, min=1, help="Detections kept per image and class (COCO: 100)."),
    use_difficult: bool = typer.Option(False, "--use-difficult", help=USE_DIFFICULT_HELP),
    as_json: bool = JsonOption,
) -> None:
    """Score a COCO results file: COCO's twelve numbers (as pycocotools), VOC mAP@0.5, per class."""
    from convsight.detection.scoring import score_results

    ds, metrics = score_results(gt, preds, max_dets=max_dets, use_difficult=use_difficult)
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


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``--set key=value`` pairs; values parse as JSON when they can (numbers, lists, booleans)."""
    import json

    from convsight.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


# torchvision's COCO detectors (convsight.detection.tv_build.MODELS; tests/cli/test_detect_tv.py keeps this in step)
TV_ARCHS = ("tv:fasterrcnn_resnet50_fpn_v2", "tv:fasterrcnn_mobilenet_v3_large_fpn", "tv:fasterrcnn_mobilenet_v3_large_320_fpn",
            "tv:retinanet_resnet50_fpn_v2", "tv:fcos_resnet50_fpn", "tv:ssd300_vgg16", "tv:ssdlite320_mobilenet_v3_large")
TV_HELP = f"or torchvision's COCO detectors: {', '.join(TV_ARCHS)}"
ARCH_HELP = f"localize, sliding, rcnn, fast-rcnn, faster-rcnn, yolo or ssd, {TV_HELP} (fine-tuned on --data's classes)."
SET_HELP = ("A config option of a detector built at load, key=value (repeatable): imagenet-localize / "
            "imagenet-sliding take group=true (16 super-classes: cat, dog, cup, ...), cam_threshold, ...")
RUN_ARCH_HELP = (f"Which detector when --weights is not given: the shipped yolo, ssd or faster-rcnn (default "
                 f"{DEFAULT_ARCH.replace('_', '-')}), imagenet-localize, imagenet-sliding, {TV_HELP} (COCO weights from the torch "
                 "cache, or a download with CONVSIGHT_ALLOW_DOWNLOAD=1). With --weights: the architecture the file holds "
                 "(for tv:, a torchvision state dict, a fine-tuned detector file, or 'random' for timing).")


@app.command()
def train(
    arch: str = typer.Option(..., "--arch", help=f"Architecture: {ARCH_HELP}"),
    data: Path = typer.Option(..., "--data", help="Dataset folder (COCO/VOC/YOLO; with train/ and val/ or split here)."),
    val: Path | None = typer.Option(None, "--val", help="Separate validation dataset folder."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder (default runs/detect/ARCH)."),
    epochs: int = typer.Option(20, min=1),
    batch_size: int = typer.Option(8, min=1),
    lr: float = typer.Option(1e-3),
    optimizer: str = typer.Option("adamw", help="adamw or sgd."),
    image_size: int | None = typer.Option(None, min=32, help="Square input side (default: the architecture's)."),
    backbone: str | None = typer.Option(None, help="Backbone name (default: the architecture's)."),
    backbone_weights: str | None = typer.Option(None, help="imagenet, a .safetensors file (e.g. from detect pretrain), or none; "
                                                "for tv: archs coco (the default: torchvision's COCO detector, a new class predictor), "
                                                "imagenet, a torchvision state dict file, or none."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train the heads only (transfer learning)."),
    sets: list[str] = typer.Option([], "--set", help="Any config option as key=value (repeatable), e.g. --set grid=7."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", help="auto (bf16 where the device runs it natively, else fp32), fp32, or bf16: "
                                  "autocast + channels-last (~2x faster on CPUs with AVX512_BF16/AMX, slower elsewhere)."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
    init: Path | None = typer.Option(None, "--init", help="Start from this detector file (its config, --set on top, and its "
                                     "weights; same architecture and classes): fine-tuning, e.g. a shipped file made multi-scale."),
    keep: str = typer.Option("best", "--keep", help="Which epoch becomes detector.safetensors: best (validation mAP@0.5) or last."),
    as_json: bool = JsonOption,
) -> None:
    """Train a detector; keeps the best epoch (validation mAP@0.5, or --keep last) as OUT/detector.safetensors."""
    from convsight.detection import engine
    from convsight.detection.config import config_with
    from convsight.precision import configure_threads, resolve_precision
    from convsight.training import TrainConfig

    name = canonical_arch(arch)
    overrides = _overrides(sets)
    for key, value in (("backbone", backbone), ("backbone_weights", backbone_weights)):
        if value is not None:
            overrides[key] = None if value == "none" else value
    if image_size is not None:
        overrides["image_size"] = [image_size, image_size]
    if freeze_backbone:
        overrides["freeze_backbone"] = True
    if keep not in ("best", "last"):
        from convsight.errors import ConfigError

        raise ConfigError(f"--keep must be best or last, got {keep!r}")
    if init is None:
        config_with(name, overrides)  # a wrong architecture or option fails before any data is read
    train_set, val_set = engine.load_splits(data, val, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=1e-4, precision=precision,
                      warmup_epochs=min(1, epochs - 1), device=device, seed=seed)
    threads = configure_threads()
    info(f"{name}: {len(train_set)} training and {len(val_set)} validation images, {len(train_set.class_names)} classes; "
         f"precision {resolve_precision(precision, device)}{' (auto)' if precision == 'auto' else ''}, {threads} threads")
    r = engine.train(name, train_set, val_set, out or Path("runs/detect") / name, cfg, overrides, resume=resume,
                     init=init, keep=keep)
    m = r.evaluation.metrics
    if as_json:
        print_json({"weights": str(r.weights), "epochs": len(r.result.history), "val": m.to_dict(),
                    "val_loss": r.evaluation.val_loss, "ms_per_image": r.evaluation.ms_per_image})
    else:
        print_metrics(m, f"{name}: best epoch on {len(val_set)} validation images")
        info(f"weights: {r.weights}")


def _load(weights: Path | None, arch: str | None, device: str, sets: list[str], conf: float | None = None):  # type: ignore[no-untyped-def]
    """The Python API's detector (:func:`convsight.load_detector`, so the CLI and a notebook load and run
    alike): ``--weights`` (a file that must hold ``--arch`` when both are given; for ``tv:`` and
    ``imagenet-*``, read by that architecture's loader) or else ``--arch``'s shipped or pretrained one."""
    from convsight.api.detect import load_detector

    source = weights if weights is not None else (arch or DEFAULT_ARCH)
    return load_detector(source, device, conf, arch=arch if weights is not None else None, **_overrides(sets))


@app.command(name="eval")
def eval_(
    data: Path = typer.Argument(..., help="Dataset folder (COCO/VOC/YOLO) or COCO .json."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Detector file (default: the shipped one for --arch)."),
    arch: str | None = typer.Option(None, help=RUN_ARCH_HELP),
    conf: float | None = typer.Option(None, "--conf", help="Score threshold (default 0.01: mAP counts low scores too)."),
    iou: float | None = typer.Option(None, "--iou", help="NMS IoU threshold (default: the model's)."),
    batch_size: int = typer.Option(8, min=1),
    device: str = typer.Option("auto"),
    plot: Path | None = typer.Option(None, "--plot", help="Also write precision-recall curves to this PNG."),
    use_difficult: bool = typer.Option(False, "--use-difficult", help=USE_DIFFICULT_HELP),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    as_json: bool = JsonOption,
) -> None:
    """Evaluate a detector on a dataset: COCO's twelve numbers, VOC mAP@0.5, per class, speed."""
    from rich.progress import Progress

    from convsight.cli.common import err_console
    from convsight.io.formats import read_dataset

    det = _load(weights, arch, device, sets)
    model, path = det.model, det.path
    ds = read_dataset(data)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("evaluating", total=len(ds))
        ev = det.evaluate(ds, conf, iou, batch_size, use_difficult, on_batch=lambda n: bar.advance(task, n))
    metrics = ev.metrics
    if plot is not None:
        from convsight.detection.plots import plot_pr_curves

        plot_pr_curves(metrics, plot)
    doc = {**metrics.to_dict(), "val_loss": ev.val_loss, "ms_per_image": ev.ms_per_image, "weights": str(path)}
    if as_json:
        print_json(doc)
    else:
        print_metrics(metrics, f"{model.arch} on {data} ({len(ds)} images, {ev.ms_per_image:.1f} ms/image)")


@app.command()
def predict(
    images: list[Path] | None = typer.Argument(None, help="Image files or folders (or --data)."),
    data: Path | None = typer.Option(None, "--data", help="Take the images from this dataset (COCO json or any dataset folder); "
                                     "results.json then uses its image and category ids, so `detect score DATA results.json` works."),
    out: Path = typer.Option(Path("runs/predict"), "--out", "-o", help="Output folder: annotated images, results.json, images.json."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Detector file (default: the shipped one for --arch)."),
    arch: str | None = typer.Option(None, help=RUN_ARCH_HELP),
    conf: float | None = typer.Option(None, "--conf", help=f"Score threshold for what is drawn and written (default: each file's best-F1 score: {thresholds_text()})."),
    iou: float | None = typer.Option(None, "--iou", help="NMS IoU threshold (default: the model's)."),
    batch_size: int = typer.Option(8, min=1),
    device: str = typer.Option("auto"),
    overwrite: bool = typer.Option(False, help="Replace a non-empty output folder."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    as_json: bool = JsonOption,
) -> None:
    """Detect objects in images; writes annotated copies and COCO-format results."""
    from rich.progress import Progress

    from convsight.cli.common import err_console
    from convsight.detection.outputs import detections_doc, write_predictions
    from convsight.io.images import list_images, load_image

    if (data is None) == (not images):
        from convsight.errors import ConfigError

        raise ConfigError("give image files/folders or --data DATASET (one of the two)")
    det = _load(weights, arch, device, sets, conf)
    names = det.class_names
    image_ids = None
    # A COCO-head detector (tv:) writes COCO's own category ids, so its results score against COCO files.
    category_ids = getattr(det.model, "category_ids", None)
    if data is not None:
        paths, image_ids, category_ids = _dataset_images(data, names)
    else:
        paths = [p for item in images or [] for p in (list_images(item) if item.is_dir() else [item])]
    arrays = [load_image(p) for p in paths]  # all decoded (and checked) before any output is written
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("detecting", total=len(arrays))
        results = det.predict(arrays, iou=iou, batch_size=batch_size, on_batch=lambda n: bar.advance(task, n))
    dets = [r.to_detections() for r in results]
    write_predictions(out, paths, arrays, dets, names, overwrite=overwrite, image_ids=image_ids, category_ids=category_ids)
    if as_json:
        print_json({**detections_doc(paths, dets, names), "out": str(out)})
    else:
        for p, d in zip(paths, dets, strict=True):
            info(f"{p}: {len(d)} objects" + "".join(f"\n  {names[k]} {s:.2f}" for k, s in zip(d.labels.tolist(), d.scores.tolist(), strict=True)))
        info(f"wrote {out}")


def _dataset_images(data: Path, names: tuple[str, ...] | list[str]) -> tuple[list[Path], list[int], list[int]]:
    """For ``predict --data``: the dataset's image paths, its image ids (``1..N`` for formats without
    ids) and, for each detector class, the dataset's category id of the same name."""
    from convsight.errors import DatasetError
    from convsight.io.coco import CocoIds
    from convsight.io.formats import read_dataset

    ds = read_dataset(data)  # `detect score` reads the same images in the same order
    missing = [n for n in names if n not in ds.class_names]
    if missing:
        raise DatasetError(f"{data}: the detector's classes {missing} are not categories of this dataset "
                           f"(its categories: {list(ds.class_names)})")
    ids = CocoIds.of(ds)
    return [im.path for im in ds.images], list(ids.image_ids), [ids.category_ids[ds.class_names.index(n)] for n in names]
