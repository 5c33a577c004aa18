"""Object detection from Python: a shipped or trained detector in one line.

    det = convsight.load_detector("ssd")          # "yolo", "faster-rcnn", or a detector file
    result = det.predict("photo.jpg")             # one image in, one DetectionResult out
    result.boxes, result.scores, result.names     # (N, 4) xyxy pixels, (N,), N class names
    result.save("annotated.jpg")                  # or .plot() -> (H, W, 3) uint8, .to_json()

The model is loaded as ``convsight detect predict`` loads it
(:func:`~convsight.detection.inference.load_for_inference`) and runs through the same
:func:`~convsight.detection.engine.predict`; without ``conf`` it draws at the score
``predict`` uses by default (:func:`~convsight.detection.defaults.display_threshold`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
from torch import Tensor

from convsight.api.images import ImageInput, as_list, is_batch, save_rgb, source_of, to_array
from convsight.detection.base import Detector as _Model
from convsight.errors import DatasetError
from convsight.io.annotations import AnnotationSet
from convsight.structures import Detections

if TYPE_CHECKING:  # the engine pulls in the training stack: imported when a detector evaluates
    from convsight.detection.engine import Evaluation


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """The detections in one image, in that image's own pixels.

    boxes: ``(N, 4)`` float32 xyxy; scores: ``(N,)`` float32, highest first; labels: ``(N,)`` int64
    indices into ``class_names``; image: the ``(H, W, 3)`` uint8 RGB picture they were found in;
    source: the path it was read from (None for an in-memory image).
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_names: tuple[str, ...]
    image: np.ndarray = field(repr=False)
    source: str | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def names(self) -> list[str]:
        """The class name of each detection, ``(N,)`` (``class_names[label]``)."""
        return [self.class_names[k] for k in self.labels.tolist()]

    def to_detections(self) -> Detections:
        """The package's own :class:`~convsight.structures.Detections` (boxes, scores, labels)."""
        return Detections(self.boxes, self.scores, self.labels)

    def to_dict(self) -> dict[str, Any]:
        """``{"file", "width", "height", "detections": [{"box_xyxy", "score", "label", "class"}]}``,
        the per-image document of ``convsight detect predict --json``."""
        from convsight.detection.outputs import detection_records

        h, w = self.image.shape[:2]
        return {"file": self.source, "width": int(w), "height": int(h),
                "detections": detection_records(self.to_detections(), self.class_names)}

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def plot(self) -> np.ndarray:
        """A copy of the image with every box drawn and labelled (class and score): ``(H, W, 3)`` uint8."""
        from convsight.viz import draw_boxes

        return draw_boxes(self.image, self.boxes, self.labels, self.class_names, scores=self.scores)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`plot` to ``path`` (``.jpg``, ``.png``, ...) or, for a ``.json`` path,
        :meth:`to_json`; atomically (never half a file). Returns the path."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            from convsight.io.atomic import write_json

            write_json(path, self.to_dict())
            return path
        return save_rgb(self.plot(), path)


class Detector:
    """A loaded detector: :meth:`predict` (also ``detector(images)``) on any image input.

    model: the underlying :class:`~convsight.detection.base.Detector` module (eval mode, inference
    optimised); class_names: what its labels mean; path: the weights file; conf: the default score
    threshold of :meth:`predict`.
    """

    def __init__(self, model: _Model, class_names: Sequence[str], path: Path, conf: float | None = None) -> None:
        from convsight.detection.defaults import display_threshold

        self.model, self.class_names, self.path = model, tuple(class_names), Path(path)
        self.conf = display_threshold(model.arch) if conf is None else float(conf)

    @property
    def arch(self) -> str:
        """The architecture's registry name (``"ssd"``, ``"yolo"``, ``"faster_rcnn"``, ...)."""
        return self.model.arch

    def __repr__(self) -> str:
        return f"Detector(arch={self.arch!r}, classes={list(self.class_names)}, conf={self.conf:g}, path='{self.path}')"

    @overload
    def predict(self, images: list[ImageInput] | tuple[ImageInput, ...], conf: float | None = ...,
                iou: float | None = ..., batch_size: int = ...,
                on_batch: Callable[[int], None] | None = ...) -> list[DetectionResult]: ...
    @overload
    def predict(self, images: ImageInput, conf: float | None = ..., iou: float | None = ...,
                batch_size: int = ..., on_batch: Callable[[int], None] | None = ...) -> DetectionResult | list[DetectionResult]: ...

    def predict(self, images: ImageInput | list[ImageInput] | tuple[ImageInput, ...], conf: float | None = None,
                iou: float | None = None, batch_size: int = 8,
                on_batch: Callable[[int], None] | None = None) -> DetectionResult | list[DetectionResult]:
        """Detect objects in one image (-> one :class:`DetectionResult`) or a batch (a list or
        tuple of images, or a ``(B, 3, H, W)`` tensor -> a list, in order).

        conf: keep detections scoring at least this (default :attr:`conf`; use 0.01 for
        evaluation, where mAP integrates over every score); iou: the NMS overlap for this call
        instead of the model's own; batch_size: images per forward pass; on_batch: called with the
        number of images after each batch (a progress bar).
        """
        from convsight.detection.engine import predict

        items = as_list(images)
        arrays = [to_array(im) for im in items]
        threshold = self.conf if conf is None else float(conf)
        dets = predict(self.model, arrays, batch_size=batch_size, score_threshold=threshold, iou_threshold=iou,
                       on_batch=on_batch)
        out = [_result(d, self.class_names, a, source_of(im)) for d, a, im in zip(dets, arrays, items, strict=True)]
        return out if is_batch(images) else out[0]

    __call__ = predict

    def evaluate(self, data: str | os.PathLike[str] | AnnotationSet, conf: float | None = None, iou: float | None = None,
                 batch_size: int = 8, use_difficult: bool = False,
                 on_batch: Callable[[int], None] | None = None) -> Evaluation:
        """Score the detector on a labelled dataset, as ``convsight detect eval`` does: COCO's twelve
        numbers and VOC AP (``.metrics``), the validation loss (``.val_loss``) and the forward pass's
        ``.ms_per_image``.

        data: a dataset folder (COCO, VOC or YOLO) or COCO ``.json``, or an
        :class:`~convsight.io.annotations.AnnotationSet`, with this detector's classes or some of
        them, matched by name (e.g. a person-and-car COCO subset for a ``tv:`` detector: detections of
        other classes are dropped; a class the detector lacks is a
        :class:`~convsight.errors.DatasetError`); conf: lowest score kept (default 0.01:
        mAP integrates over every score, not :attr:`conf`); iou: NMS overlap instead of the model's.
        """
        from convsight.detection import engine
        from convsight.io.formats import read_dataset

        ds = data if isinstance(data, AnnotationSet) else read_dataset(data)
        class_map = None
        if tuple(ds.class_names) != self.class_names:  # a dataset of some of the detector's classes (COCO's person, car...)
            unknown = [n for n in ds.class_names if n not in self.class_names]
            if unknown:
                where = "the dataset's" if isinstance(data, AnnotationSet) else f"{data}:"
                raise DatasetError(f"{where} classes {unknown} are not among the detector's {list(self.class_names)}")
            class_map = [self.class_names.index(n) for n in ds.class_names]
        return engine.evaluate(self.model, ds, batch_size, on_batch=on_batch, iou_threshold=iou,
                               score_threshold=engine.EVAL_SCORE_THRESHOLD if conf is None else float(conf),
                               use_difficult=use_difficult, class_map=class_map)


def _result(det: Detections, class_names: tuple[str, ...], image: np.ndarray, source: str | None) -> DetectionResult:
    order = det.scores.argsort(descending=True)
    return DetectionResult(det.boxes[order].float(), det.scores[order].float(), det.labels[order].long(),
                           class_names, image, source)


def load_detector(weights: str | os.PathLike[str] = "ssd", device: str | torch.device = "cpu",
                  conf: float | None = None, arch: str | None = None, **options: object) -> Detector:
    """A detector ready to :meth:`~Detector.predict`.

    weights: a shipped architecture (``"ssd"``, the most accurate, ``"yolo"``, ``"faster-rcnn"``),
    the real-photo ImageNet detectors (``"imagenet-sliding"``, ``"imagenet-localize"``), one of
    torchvision's COCO detectors (``"tv:fasterrcnn_resnet50_fpn_v2"``, ...; weights from the torch
    cache), or a detector file written by ``convsight detect train`` (``detector.safetensors``).
    device: ``"cpu"`` (the default), ``"cuda"`` or ``"auto"`` (CUDA when there is one).
    conf: the default score threshold of :meth:`~Detector.predict` (None: the architecture's
    display threshold, as ``convsight detect predict`` draws).
    arch: the architecture ``weights`` (a file) must hold; for ``tv:NAME`` / ``imagenet-*``, the
    loader that reads it (a torchvision state dict, ``"random"`` for timing).
    options: config fields of the ``imagenet-*`` detectors, e.g. ``group=True`` for super-classes
    (cat, dog, cup, ...) instead of ImageNet's 1000 names.
    """
    from convsight.detection.inference import load_for_inference

    model, names, path = load_for_inference(weights, device, arch=arch, options=options)
    return Detector(model, names, path, conf)
