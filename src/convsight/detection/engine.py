"""Training, evaluation and prediction for every detector: one path, whatever the architecture.

Images are resized to the detector's input: its fixed ``model.image_size``, or, for a detector whose
config has ``input_sides``, each image's own size clamped into that range (:func:`input_size`;
:mod:`convsight.detection.input_sides`), and such a detector is trained multi-scale. Boxes go back to
each image's own pixels before scoring or writing, so metrics and outputs are in the user's coordinates.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from convsight.detection.base import Detector
from convsight.detection.build import build_detector
from convsight.detection.config import config_with
from convsight.detection.input_sides import input_size_for, sides_of
from convsight.detection.metrics import DetectionMetrics, evaluate_detections
from convsight.detection.serialize import load_detector, save_detector
from convsight.errors import ConfigError, DatasetError
from convsight.io.annotations import AnnotationSet
from convsight.io.formats import read_dataset
from convsight.io.images import resize_image, to_tensor
from convsight.io.torch_data import DetectionDataset, collate_detection
from convsight.structures import Detections
from convsight.training import (
    TrainConfig,
    Trainer,
    TrainResult,
    load_checkpoint,
    move_to,
)
from convsight.training.batches import MultiScaleStep
from convsight.weights import load_state_dict_checked


def load_splits(data: str | os.PathLike[str], val: str | os.PathLike[str] | None = None, val_fraction: float = 0.2,
                seed: int = 0) -> tuple[AnnotationSet, AnnotationSet]:
    """Training and validation annotations.

    ``data/train`` + ``data/val`` folders when both exist; else ``data`` for training and ``val`` when
    given; else a seeded split of ``data`` (``val_fraction`` of the images for validation).
    """
    root = Path(data)
    if val is None and (root / "train").is_dir() and (root / "val").is_dir():
        return read_dataset(root / "train"), read_dataset(root / "val")
    train = read_dataset(root)
    if val is not None:
        v = read_dataset(val)
        if v.class_names != train.class_names:
            raise DatasetError(f"{val}: classes {list(v.class_names)} differ from {root}'s {list(train.class_names)}")
        return train, v
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n_val = max(1, round(len(train) * val_fraction))
    if len(train) - n_val < 1:
        raise DatasetError(f"{root}: {len(train)} images are too few to split off a validation set")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    pick = lambda idx: AnnotationSet(tuple(train.images[i] for i in sorted(idx)), train.class_names)  # noqa: E731
    return pick(order[n_val:]), pick(order[:n_val])


def _scale(det: Detections, from_hw: tuple[int, int], to_hw: tuple[int, int]) -> Detections:
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    return Detections(det.boxes * det.boxes.new_tensor([sx, sy, sx, sy]), det.scores, det.labels)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def input_size(model: Detector, hw: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` the model runs an image of ``hw = (h, w)`` at: its ``image_size``, or with
    ``input_sides`` the image's own size clamped into them (:func:`~convsight.detection.input_sides.input_size_for`)."""
    sides = sides_of(model)
    return model.image_size if sides is None else input_size_for(hw, sides)


def _groups(sizes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Indices by input size, in first-seen order (a batch must share one size)."""
    out: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        out.setdefault(size, []).append(i)
    return out


@torch.no_grad()
def predict(model: Detector, images: Sequence[Tensor | np.ndarray], batch_size: int = 8,
            score_threshold: float | None = None, iou_threshold: float | None = None,
            on_batch: Callable[[int], None] | None = None) -> list[Detections]:
    """Detections for images of any size, in each image's own pixels.

    images: ``(3, H_i, W_i)`` float tensors in ``[0, 1]`` or ``(H_i, W_i, 3)`` uint8 arrays (made
    float one batch at a time, so a long list costs its uint8 size, not four times that);
    score_threshold, iou_threshold: for this call instead of the model's own (None keeps it);
    on_batch: called with the number of images after each batch (progress bars).
    """
    model.eval()
    postprocess = model.postprocess.with_thresholds(score_threshold, iou_threshold)
    device = model_device(model)
    out: list[Detections] = []
    for start in range(0, len(images), batch_size):
        chunk = [im if isinstance(im, Tensor) else to_tensor(im) for im in images[start : start + batch_size]]
        dets: list[Detections] = [Detections.empty()] * len(chunk)
        for size, idx in _groups([input_size(model, im.shape[-2:]) for im in chunk]).items():
            batch = torch.stack([resize_image(chunk[i], size) for i in idx]).to(device)
            for i, det in zip(idx, model(batch, postprocess=postprocess).detections, strict=True):
                dets[i] = _scale(det.to("cpu"), size, tuple(chunk[i].shape[-2:]))
        out += dets
        if on_batch is not None:
            on_batch(len(chunk))
    return out


@dataclass(frozen=True)
class Evaluation:
    metrics: DetectionMetrics
    detections: list[Detections]  # per image, in its own pixels
    val_loss: float | None  # mean loss per image (None when evaluate was asked for no loss)
    ms_per_image: float  # the model's forward pass alone, see model_ms_per_image


# mAP integrates precision over every score, so evaluation keeps low-scoring boxes (as COCO/VOC
# evaluations of detectors do); a model's own score threshold is for what a user is shown.
EVAL_SCORE_THRESHOLD = 0.01


def model_ms_per_image(batch_ms: Sequence[float]) -> float:
    """Per-image milliseconds of each batch's forward pass -> one figure: their median, without
    the first batch when there are three or more (its oneDNN kernels are created on first use).
    The median, because on a shared machine a slow spell of another process can make a few batches
    ten times slower; it moves the mean, hardly the median."""
    timed = list(batch_ms[1:] if len(batch_ms) >= 3 else batch_ms)
    return statistics.median(timed) if timed else float("nan")


@torch.no_grad()
def evaluate(model: Detector, annotations: AnnotationSet, batch_size: int = 8,
             on_batch: Callable[[int], None] | None = None, score_threshold: float | None = EVAL_SCORE_THRESHOLD,
             iou_threshold: float | None = None, loss: bool = True, use_difficult: bool = False,
             class_map: Sequence[int] | None = None) -> Evaluation:
    """Score ``model`` on ``annotations`` (COCO and VOC metrics, in the images' own coordinates).

    score_threshold, iou_threshold: for this evaluation instead of the model's own (None keeps it);
    loss: also the mean loss (one more forward pass with the targets, not timed); use_difficult:
    count VOC ``difficult`` objects in VOC AP (the devkit ignores them); class_map: for a dataset
    whose classes are some of the model's, the model's label of each dataset class (detections of
    the model's other classes are dropped, the returned ones carry dataset labels; the targets go
    to the loss in the model's labels). ``ms_per_image``
    times the forward pass that makes the detections, as ``predict`` runs it: no loading, decoding,
    resizing, loss or metrics (:func:`model_ms_per_image`).
    """
    model.eval()
    postprocess = model.postprocess.with_thresholds(score_threshold, iou_threshold)
    device = model_device(model)
    dets: list[Detections] = [Detections.empty()] * len(annotations)
    loss_sum, batch_ms = 0.0, []
    to_model = to_data = None
    if class_map is not None:
        to_model = torch.as_tensor(list(class_map), dtype=torch.long)
        to_data = torch.full((model.num_classes,), -1, dtype=torch.long)
        to_data[to_model] = torch.arange(len(to_model))
    sizes = [input_size(model, (a.height, a.width)) for a in annotations.images]
    for size, idx in _groups(sizes).items():  # one size for all, unless the model has input_sides
        part = dataclasses.replace(annotations, images=tuple(annotations.images[i] for i in idx))
        loader = DataLoader(DetectionDataset(part, size=size), batch_size=batch_size, collate_fn=collate_detection)
        for images, targets in loader:
            images = images.to(device)
            _sync(device)
            t0 = time.perf_counter()
            out = model(images, postprocess=postprocess)
            _sync(device)
            batch_ms.append(1000 * (time.perf_counter() - t0) / len(images))
            if loss:
                given = targets if to_model is None else [dataclasses.replace(t, labels=to_model[t.labels]) for t in targets]
                loss_sum += float(model(images, move_to(given, device)).loss) * len(images)
            for t, det in zip(targets, out.detections, strict=True):
                ann = part[t.image_id]
                det = _scale(det.to("cpu"), size, (ann.height, ann.width))
                if to_data is not None:  # keep the dataset's classes, in its labels
                    det = det[to_data[det.labels] >= 0]
                    det = Detections(det.boxes, det.scores, to_data[det.labels])
                dets[idx[t.image_id]] = det
            if on_batch is not None:
                on_batch(len(images))
    metrics = evaluate_detections(dets, annotations.images, len(annotations.class_names), annotations.class_names,
                                  use_difficult=use_difficult)
    n = max(len(annotations), 1)
    return Evaluation(metrics, dets, loss_sum / n if loss else None, model_ms_per_image(batch_ms))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: wait for them before reading the clock
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class TrainOutcome:
    model: Detector  # the best epoch's weights (by validation mAP@0.5), in eval mode
    weights: Path  # detector.safetensors in the run folder
    result: TrainResult
    evaluation: Evaluation  # of the best model on the validation set


def start_model(arch: str, class_names: Sequence[str], overrides: dict[str, Any] | None = None,
                init: str | os.PathLike[str] | None = None) -> Detector:
    """The detector a training run starts from: ``arch`` built from its defaults plus ``overrides``, or,
    from ``init`` (a detector file of that architecture and these classes), its config plus
    ``overrides`` and its weights (fine-tuning, e.g. a shipped file trained again multi-scale)."""
    if init is None:
        return build_detector(arch, len(class_names), config_with(arch, overrides or {}))
    start, names = load_detector(init, arch=arch)
    if tuple(names) != tuple(class_names):
        raise DatasetError(f"{init}: classes {list(names)} differ from the training set's {list(class_names)}")
    # the file's config with the overrides on top; its weights come from the file, not a backbone file
    cfg = config_with(arch, {**(overrides or {}), "backbone_weights": None}, base=start.config)
    model = build_detector(arch, len(class_names), cfg)
    load_state_dict_checked(model, start.state_dict(), str(init))
    return model


def train(arch: str, train_set: AnnotationSet, val_set: AnnotationSet, out_dir: str | os.PathLike[str],
          train_config: TrainConfig, overrides: dict[str, Any] | None = None, resume: bool = False,
          init: str | os.PathLike[str] | None = None, keep: str = "best") -> TrainOutcome:
    """Train ``arch`` (its config's defaults plus ``overrides``; with ``init``, that file's config and
    weights, :func:`start_model`) with the shared Trainer.

    Every epoch logs train and validation loss and the validation mAP@0.5 / mAP@[.5:.95]; the best epoch
    by mAP@0.5 (``keep="best"``) or the last one (``keep="last"``: the end of the cosine schedule, for a
    validation set that does not measure what the run is for, e.g. one size in multi-scale training) is
    written as ``out_dir/detector.safetensors`` (weights + config + class names).
    A config with ``input_sides`` trains multi-scale: each batch rescaled to a random side in that range
    (:class:`~convsight.training.batches.MultiScaleStep`); validation runs as :func:`evaluate` does.
    """
    if val_set.class_names != train_set.class_names:
        raise DatasetError("training and validation sets have different classes")
    if keep not in ("best", "last"):
        raise ConfigError(f"keep must be 'best' or 'last', got {keep!r}")
    out_dir = Path(out_dir)
    model = start_model(arch, train_set.class_names, overrides, init)
    size = model.image_size
    train_data = DetectionDataset(train_set, size=size, hflip=0.5, seed=train_config.seed)
    val_data = DetectionDataset(val_set, size=size)

    def metrics(m: torch.nn.Module) -> dict[str, float]:
        # The Trainer computes the validation loss itself; here only the metrics are needed.
        ev = evaluate(m, val_set, batch_size=train_config.batch_size, loss=False)  # type: ignore[arg-type]
        return {"map50": ev.metrics.map50, "map": ev.metrics.map}

    if train_config.monitor is None:
        train_config = dataclasses.replace(train_config, monitor="map50", monitor_mode="max")
    sides = sides_of(model)
    step = MultiScaleStep(sides) if sides is not None else None
    result = Trainer(model, train_data, val_data, train_config, out_dir, collate_fn=collate_detection,
                     step_fn=step, evaluate_fn=metrics).fit(resume=resume)
    chosen = result.best_path if keep == "best" else result.last_path
    if chosen is not None:
        model.load_state_dict(load_checkpoint(chosen).model)
    model.eval()
    weights = save_detector(model, out_dir / "detector.safetensors", train_set.class_names,
                            extra={"train": json.dumps({"epochs": len(result.history), "train_images": len(train_set),
                                                      "kept": keep})})
    return TrainOutcome(model, weights, result, evaluate(model, val_set, batch_size=train_config.batch_size))
