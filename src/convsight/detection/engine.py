"""Training, evaluation and prediction for every detector: one path, whatever the architecture.

Images are resized to the detector's fixed input (``model.image_size``); boxes go back to each
image's own pixels before scoring or writing, so metrics and outputs are in the user's coordinates.
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
from convsight.detection.metrics import DetectionMetrics, evaluate_detections
from convsight.detection.serialize import save_detector
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
    device, size = model_device(model), model.image_size
    out: list[Detections] = []
    for start in range(0, len(images), batch_size):
        chunk = [im if isinstance(im, Tensor) else to_tensor(im) for im in images[start : start + batch_size]]
        batch = torch.stack([resize_image(im, size) for im in chunk]).to(device)
        for im, det in zip(chunk, model(batch, postprocess=postprocess).detections, strict=True):
            out.append(_scale(det.to("cpu"), size, tuple(im.shape[-2:])))
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
             iou_threshold: float | None = None, loss: bool = True, use_difficult: bool = False) -> Evaluation:
    """Score ``model`` on ``annotations`` (COCO and VOC metrics, in the images' own coordinates).

    score_threshold, iou_threshold: for this evaluation instead of the model's own (None keeps it);
    loss: also the mean loss (one more forward pass with the targets, not timed); use_difficult:
    count VOC ``difficult`` objects in VOC AP (the devkit ignores them). ``ms_per_image``
    times the forward pass that makes the detections, as ``predict`` runs it: no loading, decoding,
    resizing, loss or metrics (:func:`model_ms_per_image`).
    """
    model.eval()
    postprocess = model.postprocess.with_thresholds(score_threshold, iou_threshold)
    device = model_device(model)
    loader = DataLoader(DetectionDataset(annotations, size=model.image_size), batch_size=batch_size,
                        collate_fn=collate_detection)
    dets: list[Detections] = []
    loss_sum, batch_ms = 0.0, []
    for images, targets in loader:
        images = images.to(device)
        _sync(device)
        t0 = time.perf_counter()
        out = model(images, postprocess=postprocess)
        _sync(device)
        batch_ms.append(1000 * (time.perf_counter() - t0) / len(images))
        if loss:
            loss_sum += float(model(images, move_to(targets, device)).loss) * len(images)
        for t, det in zip(targets, out.detections, strict=True):
            ann = annotations[t.image_id]
            dets.append(_scale(det.to("cpu"), model.image_size, (ann.height, ann.width)))
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


def train(arch: str, train_set: AnnotationSet, val_set: AnnotationSet, out_dir: str | os.PathLike[str],
          train_config: TrainConfig, overrides: dict[str, Any] | None = None, resume: bool = False) -> TrainOutcome:
    """Train ``arch`` (its config's defaults plus ``overrides``) with the shared Trainer.

    Every epoch logs train and validation loss and the validation mAP@0.5 / mAP@[.5:.95]; the best epoch
    by mAP@0.5 is kept and written as ``out_dir/detector.safetensors`` (weights + config + class names).
    """
    if val_set.class_names != train_set.class_names:
        raise DatasetError("training and validation sets have different classes")
    out_dir = Path(out_dir)
    cfg = config_with(arch, overrides or {})
    model = build_detector(arch, len(train_set.class_names), cfg)
    size = model.image_size
    train_data = DetectionDataset(train_set, size=size, hflip=0.5, seed=train_config.seed)
    val_data = DetectionDataset(val_set, size=size)

    def metrics(m: torch.nn.Module) -> dict[str, float]:
        # The Trainer computes the validation loss itself; here only the metrics are needed.
        ev = evaluate(m, val_set, batch_size=train_config.batch_size, loss=False)  # type: ignore[arg-type]
        return {"map50": ev.metrics.map50, "map": ev.metrics.map}

    if train_config.monitor is None:
        train_config = dataclasses.replace(train_config, monitor="map50", monitor_mode="max")
    result = Trainer(model, train_data, val_data, train_config, out_dir, collate_fn=collate_detection,
                     evaluate_fn=metrics).fit(resume=resume)
    if result.best_path is not None:
        model.load_state_dict(load_checkpoint(result.best_path).model)
    model.eval()
    weights = save_detector(model, out_dir / "detector.safetensors", train_set.class_names,
                            extra={"train": json.dumps({"epochs": len(result.history), "train_images": len(train_set)})})
    return TrainOutcome(model, weights, result, evaluate(model, val_set, batch_size=train_config.batch_size))
