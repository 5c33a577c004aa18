"""torchvision's COCO detectors as convsight detectors: ``--arch tv:<torchvision builder name>``.

``images -> torchvision model (normalise, backbone, heads, its own NMS) -> labels mapped -> Detections``

Seven are registered (:data:`~convsight.detection.tv_build.MODELS`): ``tv:fasterrcnn_resnet50_fpn_v2``,
``tv:fasterrcnn_mobilenet_v3_large_fpn``, ``tv:fasterrcnn_mobilenet_v3_large_320_fpn``,
``tv:retinanet_resnet50_fpn_v2``, ``tv:fcos_resnet50_fpn``, ``tv:ssd300_vgg16``,
``tv:ssdlite320_mobilenet_v3_large``. Each keeps the Detector contract:

- **Input size.** convsight's pipeline resizes every image once, to ``config.image_size`` (default:
  torchvision's own scale, 800 / 320 / 300 px, square); torchvision's transform then only normalises
  and pads (:class:`~convsight.detection.tv_build.KeepSize`), so boxes are pixels of the input.
- **Labels.** A detector loaded with COCO weights keeps torchvision's 91-way head (``coco_head``):
  index = COCO category id, mapped to the 80 COCO names as 0-based labels (background and the 11
  ``N/A`` ids dropped); :attr:`TorchvisionDetector.category_ids` gives the COCO ids back. A detector
  fine-tuned on a dataset has ``num_classes + 1`` outputs, 0 = background.
- **Losses in eval mode.** torchvision computes losses only in training mode, detections only in eval
  mode. With targets in eval mode the wrapper runs twice: once with torchvision's control flow in
  training mode but every BatchNorm and dropout kept in eval (statistics used, never updated) and
  a fixed seed for its proposal / anchor sampling (the same batch gives the same loss), and once in
  eval mode for the detections.
- **Thresholds per call.** The ``PostprocessConfig`` of a call is set on torchvision's own attributes
  (score threshold, NMS IoU, detections per image and, for the one-stage models, top-k candidates)
  for that call only, under a lock (the web page runs models from several threads); ``min_size``
  drops smaller boxes after. Defaults: torchvision's.

Weights (:func:`load_pretrained`, the ``tv:`` hook of :data:`convsight.detection.files.PRETRAINED`),
in this order: the ``--weights`` file; torchvision's COCO file in the torch hub cache; a download when
``CONVSIGHT_ALLOW_DOWNLOAD=1``; otherwise one :class:`~convsight.weights.WeightsUnavailable` line.
Fine-tuning (``detect train --arch tv:NAME``) follows torchvision's recipe: a new class predictor for
the dataset's classes, everything else from the COCO detector (``backbone_weights="coco"``, else the
ImageNet classifier where one fits, else an error), the first backbone stages frozen as torchvision
does. The MobileNetV2 that ships offline fits none of the seven (the mobile ones are MobileNetV3).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from convsight.detection.base import (
    Detector,
    DetectorConfig,
    PostprocessConfig,
    register_detector,
)
from convsight.detection.build import build_detector
from convsight.detection.serialize import load_detector
from convsight.detection.tv_build import (
    MODELS,
    PREFIX,
    TRAINING_HINT,
    TvModel,
    build_tv_model,
    calibrate_norms_,
    coco_label_maps,
    coco_names,
    coco_state_dict,
    freeze_early_layers,
    imagenet_backbone_state,
    load_partial,
    new_predictor_prefixes,
)
from convsight.errors import ConfigError, ConvsightWarning, WeightsError
from convsight.structures import Detections, DetectorOutput, Target
from convsight.weights import WeightsUnavailable, load_state_dict_checked, read_weights

_LOCK = threading.RLock()  # torchvision reads thresholds and the training flag from its modules: one call at a time
RANDOM = "random"  # --weights random: random weights (timing, tests), never a silent fallback


@dataclass(frozen=True, kw_only=True)
class TorchvisionConfig(DetectorConfig):
    """backbone: fixed by the architecture (named for the record); backbone_weights: where training
    starts, ``"coco"`` (torchvision's COCO detector, a new class predictor; falls back to ``"imagenet"``
    when absent), ``"imagenet"`` (the classifier's ImageNet weights for the backbone), a torchvision
    state-dict file of this detector (COCO head), or None (random); trainable_backbone_layers:
    backbone stages that train when starting from pretrained weights (None: torchvision's default);
    coco_head: torchvision's 91-way COCO class head (num_classes must be 80)."""

    backbone_weights: str | None = "coco"
    trainable_backbone_layers: int | None = None
    coco_head: bool = False

    tv_model: ClassVar[TvModel]

    def validate(self) -> None:
        spec = self.tv_model
        if self.backbone != spec.backbone:
            raise self.error(f"the backbone is part of this architecture ({spec.backbone}); choose another tv: model")
        if spec.name == "ssd300_vgg16" and tuple(self.image_size) != (300, 300):
            raise self.error(f"SSD300's default boxes are laid out for 300x300 inputs, got {self.image_size}")
        high = spec.trainable_layers[1]
        low = high if spec.name == "ssdlite320_mobilenet_v3_large" else 0  # torchvision trains all of SSDlite
        k = self.trainable_backbone_layers
        if k is not None and not low <= k <= high:
            raise self.error(f"trainable_backbone_layers must lie in [{low}, {high}], got {k}")
        if self.backbone_weights == "imagenet" and spec.imagenet is None:
            raise self.error("no ImageNet start fits this architecture (torchvision's COCO SSDlite has "
                             "MobileNetV3's reduced tail); use backbone_weights coco or none")


def _config_class(spec: TvModel) -> type[TorchvisionConfig]:
    """``spec``'s config class: :class:`TorchvisionConfig` with its image size, backbone and thresholds."""
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "Config"
    cls = dataclasses.make_dataclass(
        name, [("image_size", tuple[int, int], field(default=spec.image_size)),
               ("backbone", str, field(default=spec.backbone)),
               ("postprocess", PostprocessConfig, field(default_factory=lambda: spec.postprocess))],
        bases=(TorchvisionConfig,), frozen=True, kw_only=True, namespace={"tv_model": spec})
    cls.__module__ = __name__
    return cls


class TorchvisionDetector(Detector):
    """A torchvision detection model (``self.tv``) behind the Detector contract; see the module doc."""

    has_backbone = False  # torchvision's model brings its own
    config: TorchvisionConfig

    def __init__(self, num_classes: int, config: TorchvisionConfig) -> None:
        super().__init__(num_classes, config)
        spec = config.tv_model
        if config.coco_head:
            if num_classes != len(coco_names()):
                raise ConfigError(f"{self.arch}: the COCO head predicts {len(coco_names())} classes, not {num_classes}")
            label_of_tv, tv_of_label = coco_label_maps()
        else:  # torchvision's convention for a new dataset: index 0 is background
            tv_of_label = torch.arange(1, num_classes + 1)
            label_of_tv = torch.arange(-1, num_classes)
        self.tv = build_tv_model(spec, len(label_of_tv))
        self.register_buffer("label_of_tv", label_of_tv, persistent=False)  # (T,) torchvision index -> label or -1
        self.register_buffer("tv_of_label", tv_of_label, persistent=False)  # (C,) label -> torchvision index
        self.weights_source = "random"
        if config.backbone_weights is not None:
            self.weights_source = self._init_weights(config.backbone_weights)
        if config.freeze_backbone:
            for p in self.tv.backbone.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> TorchvisionDetector:
        super().train(mode)
        if self.config.freeze_backbone:  # a frozen backbone keeps its BatchNorm statistics too
            for m in self.tv.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    @property
    def category_ids(self) -> tuple[int, ...] | None:
        """The COCO category id of each label for a COCO-head detector (what results files use), else None."""
        return tuple(self.tv_of_label.tolist()) if self.config.coco_head else None

    def _init_weights(self, source: str) -> str:
        """torchvision's fine-tuning start (see the config doc); returns where the weights came from."""
        spec, cfg = self.config.tv_model, self.config
        skip = () if cfg.coco_head else new_predictor_prefixes(spec)
        if source == "coco":
            try:
                state, path = coco_state_dict(spec, TRAINING_HINT)
            except WeightsUnavailable as coco_missing:
                if spec.imagenet is None:
                    raise
                try:
                    where = self._init_weights("imagenet")
                except WeightsUnavailable as e:
                    raise WeightsUnavailable(f"{coco_missing}. No ImageNet start either: {e}") from None
                warnings.warn(f"{coco_missing}; fine-tuning starts from the ImageNet backbone instead",
                              ConvsightWarning, stacklevel=4)
                return where
            load_partial(self.tv, state, str(path), skip)
            where = f"coco:{path}"
        elif source == "imagenet":
            load_partial(self.tv, imagenet_backbone_state(spec), f"{self.arch} ImageNet weights")
            where = "imagenet"
        else:
            load_partial(self.tv, read_weights(source)[0], source, skip)
            where = source
        freeze_early_layers(self.tv, spec, spec.trainable_layers[0] if cfg.trainable_backbone_layers is None
                            else cfg.trainable_backbone_layers)
        return where

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:
        self.check_inputs(images, targets)
        # float32 even under the trainer's bf16 autocast: torchvision's detectors are not made for it
        # (measured: SSDlite trained in bf16 at 64 px ends with NaN weights in 2 of 4 seeds, fp32 in none).
        with torch.autocast(images.device.type, enabled=False):
            return self._forward(images.float(), targets, postprocess)

    def _forward(self, images: Tensor, targets: list[Target] | None,
                 postprocess: PostprocessConfig | None) -> DetectorOutput:
        batch = list(images)  # torchvision takes a list of (3, H, W) images
        losses: dict[str, Tensor] = {}
        if targets is not None:
            tv_targets = [self._tv_target(t) for t in targets]
            if self.training:
                return DetectorOutput([], dict(self.tv(batch, tv_targets)))
            with _LOCK, _loss_mode(self.tv, images.device):
                losses = dict(self.tv(batch, tv_targets))
        elif self.training:
            return DetectorOutput()  # torchvision cannot detect in training mode; the contract allows skipping
        pp = postprocess or self.postprocess
        with _LOCK, _thresholds(self.tv, self.config.tv_model, pp):
            raw = self.tv(batch)
        return DetectorOutput([self._detections(r, pp) for r in raw], losses)

    def _tv_target(self, t: Target) -> dict[str, Tensor]:
        """A convsight target in torchvision's form; boxes without area dropped (torchvision refuses them
        in training, and they carry nothing to learn)."""
        keep = (t.boxes[:, 2] > t.boxes[:, 0]) & (t.boxes[:, 3] > t.boxes[:, 1])
        return {"boxes": t.boxes[keep].float(), "labels": self.tv_of_label[t.labels[keep]]}

    def _detections(self, r: dict[str, Tensor], pp: PostprocessConfig) -> Detections:
        labels = self.label_of_tv[r["labels"]]  # (N,) -1: background / N/A
        keep = labels >= 0
        if pp.min_size > 0:
            keep &= ((r["boxes"][:, 2:] - r["boxes"][:, :2]) >= pp.min_size).all(dim=1)
        return Detections(r["boxes"][keep], r["scores"][keep], labels[keep])


@contextlib.contextmanager
def _loss_mode(tv: nn.Module, device: torch.device) -> Iterator[None]:
    """torchvision's training control flow (losses) with every normalisation and dropout layer in eval
    mode, and its random sampling under a fixed seed (the caller's random state is left untouched)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        tv.train()
        for m in tv.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)):
                m.eval()
        try:
            yield
        finally:
            tv.eval()


@contextlib.contextmanager
def _thresholds(tv: nn.Module, spec: TvModel, pp: PostprocessConfig) -> Iterator[None]:
    """``pp`` on torchvision's postprocess attributes for one call (restored after)."""
    owner = tv.roi_heads if spec.family == "rcnn" else tv
    values = {"score_thresh": pp.score_threshold, "nms_thresh": pp.iou_threshold, "detections_per_img": pp.topk}
    if spec.family != "rcnn":  # per level (RetinaNet, FCOS) or per class (SSD), as torchvision applies it
        values["topk_candidates"] = pp.pre_nms_topk if pp.pre_nms_topk is not None else 2**31 - 1
    saved = {k: getattr(owner, k) for k in values}
    for k, v in values.items():
        setattr(owner, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(owner, k, v)


for _spec in MODELS.values():
    register_detector(_spec.arch, _config_class(_spec))(type(
        "Tv" + "".join(p.capitalize() for p in _spec.name.split("_")), (TorchvisionDetector,), {"__module__": __name__}))


# ------------------------------------------------------------------------------------------ loading


def spec_of(arch: str) -> TvModel:
    """The :class:`TvModel` of ``tv:NAME`` (an unknown name: :class:`ConfigError` listing the seven)."""
    name = arch.removeprefix(PREFIX)
    if not arch.startswith(PREFIX) or name not in MODELS:
        raise ConfigError(f"unknown torchvision detector {arch!r}; choose one of: "
                          + ", ".join(PREFIX + n for n in MODELS))
    return MODELS[name]


def coco_detector(arch: str, **overrides: object) -> TorchvisionDetector:
    """``arch`` with torchvision's 91-way COCO head and random weights (nothing loaded)."""
    model = build_detector(arch, len(coco_names()), coco_head=True, backbone_weights=None, **overrides)
    return model  # type: ignore[return-value]


def load_pretrained(arch: str, weights: str | os.PathLike[str] | None = None,
                    ) -> tuple[TorchvisionDetector, tuple[str, ...], Path]:
    """``(detector in eval mode on the CPU, class names, the file its weights came from)`` for ``tv:NAME``.

    weights: a file (a convsight detector file of a fine-tuned ``arch``, or torchvision's state dict of
    this detector as ``.pth`` / ``.pt`` / ``.safetensors``), ``"random"`` (random weights, norm
    statistics calibrated on noise: timing and tests), or None: torchvision's COCO file from the torch
    hub cache, or a download when ``CONVSIGHT_ALLOW_DOWNLOAD=1``, else one-line WeightsUnavailable.
    """
    spec = spec_of(arch)
    if weights is not None and str(weights) == RANDOM:
        with torch.random.fork_rng(devices=[]):  # the same "random" model every time; the caller's RNG untouched
            torch.manual_seed(0)
            model = coco_detector(arch)
        calibrate_norms_(model.tv, list(torch.rand(2, 3, *model.image_size, generator=torch.Generator().manual_seed(0))))
        return model.eval(), coco_names(), Path(RANDOM)
    if weights is not None:
        path = Path(weights)
        state, meta = read_weights(path)
        if "format" in meta:  # a convsight detector file
            model, names = load_detector(path, arch=arch)
            model.weights_source = str(path)
            return model, names, path  # type: ignore[return-value]
        state = {k.removeprefix("tv."): v for k, v in state.items()}
    else:
        state, path = coco_state_dict(spec)
    model = coco_detector(arch)
    try:
        load_state_dict_checked(model.tv, state, str(path))
    except WeightsError as e:
        raise WeightsError(f"{e} (a torchvision state dict of {arch} with its 91 COCO classes is expected; a "
                           "fine-tuned model loads from its convsight detector file)") from None
    model.weights_source = str(path)
    return model.eval(), coco_names(), path
