"""What every detector shares: the base module, the postprocess config and the registry by name.

A detector is a composition, ``backbone + head + loss + postprocess`` (torchvision's GeneralizedRCNN
idea): each method file (``localization.py``, ``sliding_window.py``, ``rcnn.py``, ``fast_rcnn.py``,
``faster_rcnn.py``, ``yolo.py``, ``ssd.py``) defines a config that extends :class:`DetectorConfig`
with its own fields and checks, and a :class:`Detector` subclass registered in :data:`DETECTORS`.
What they share is written here once: the five config fields every detector has and their checks,
and ``Detector.__init__`` (arch, num_classes, config, postprocess; the backbone built and frozen).
Making, changing and (de)serialising configs: :mod:`convsight.detection.config`.

Contract of ``Detector.forward(images, targets=None, postprocess=None) -> DetectorOutput``:

- images: ``(B, 3, H, W)`` float in ``[0, 1]`` with ``(H, W) == config.image_size`` (the data
  pipeline resizes; the backbone normalises);
- targets: one :class:`~convsight.structures.Target` per image (boxes xyxy absolute pixels in the
  input's coordinates, 0-based labels) or ``None``;
- returns ``losses`` (named scalar tensors) whenever targets are given, in train *and* eval mode (the
  trainer's validation loss), and ``detections`` (one :class:`Detections` per image, after
  ``postprocess`` or, when None, the model's own :class:`PostprocessConfig`) in eval mode; in train
  mode detections may be skipped (empty list). Thresholds for one call are an argument, never a
  change to the model.

``tests/detection/test_contract.py`` checks this for every registered detector.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from torch import Tensor, nn

from convsight.backbones import build_backbone, freeze
from convsight.errors import ConfigError
from convsight.ops.nms import postprocess_detections
from convsight.registry import Registry
from convsight.structures import Detections, DetectorOutput, Target


@dataclass(frozen=True)
class PostprocessConfig:
    """Raw predictions -> detections: score threshold, class-wise NMS, top-k (per model, per call)."""

    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    topk: int = 100
    pre_nms_topk: int | None = 1000
    min_size: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ConfigError(f"score threshold must lie in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError(f"NMS IoU threshold must lie in (0, 1], got {self.iou_threshold}")
        if self.topk < 1:
            raise ConfigError(f"topk must be >= 1, got {self.topk}")

    def with_thresholds(self, score: float | None = None, iou: float | None = None) -> PostprocessConfig:
        """This config with the score and / or NMS IoU threshold replaced (None keeps this one's)."""
        changes = {k: v for k, v in (("score_threshold", score), ("iou_threshold", iou)) if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def __call__(
        self, boxes: Tensor, scores: Tensor, labels: Tensor | None = None, image_size: tuple[int, int] | None = None
    ) -> Detections:
        """One image: ``boxes (N, 4)`` or ``(N, C, 4)``, ``scores (N, C)`` (no background column) or
        ``scores (N,)`` with ``labels (N,)`` -> :class:`Detections` clipped to ``image_size = (H, W)``."""
        return postprocess_detections(
            boxes, scores, labels, iou_threshold=self.iou_threshold, score_threshold=self.score_threshold,
            topk=self.topk, pre_nms_topk=self.pre_nms_topk, image_size=image_size, min_size=self.min_size,
        )


MIN_SIDE = 32  # the coarsest level of every backbone has stride 32: a smaller side has no feature map


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """The fields every detector's config has, and their checks.

    A method's config extends it (``@dataclass(frozen=True, kw_only=True)``), redeclares a field
    whose default differs for that method (``image_size``, ``postprocess``) and checks its own
    fields in :meth:`validate`, raising :meth:`error`. Field names are the JSON keys of saved files.

    image_size: ``(H, W)`` the detector takes; backbone: a registry name
    (:mod:`convsight.backbones`); backbone_weights: ``"imagenet"``, a ``.safetensors`` file or None
    (random); freeze_backbone: train the heads only; postprocess: thresholds, NMS and top-k.
    """

    image_size: tuple[int, int] = (256, 256)
    backbone: str = "tiny"
    backbone_weights: str | None = None
    freeze_backbone: bool = False
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)

    arch: ClassVar[str] = "detector"  # the registry name, set by register_detector; errors start with it

    def __post_init__(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < MIN_SIDE:
            raise self.error(f"image_size must be (H, W) with sides >= {MIN_SIDE}, got {self.image_size}")
        if not isinstance(self.backbone, str) or not self.backbone:
            raise self.error(f"backbone must be a backbone name, got {self.backbone!r}")
        if not isinstance(self.postprocess, PostprocessConfig):
            raise self.error(f"postprocess must be a PostprocessConfig, got {type(self.postprocess).__name__}")
        self.validate()

    def validate(self) -> None:
        """The method's own checks (none here)."""

    def error(self, message: str) -> ConfigError:
        """``ConfigError("<arch>: message")``, for :meth:`validate`."""
        return ConfigError(f"{self.arch}: {message}")

    def check_divisible(self, stride: int, why: str) -> None:
        """Both image sides must be multiples of ``stride``, so that whole grid cells tile the image."""
        if self.image_size[0] % stride or self.image_size[1] % stride:
            raise self.error(f"image sides {self.image_size} must be multiples of {stride} ({why})")

    def check_choices(self, **choices: Sequence[str]) -> None:
        """Each named field must be one of its choices (``layout=("per_box", "shared")``)."""
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise self.error(f"{name} must be one of {tuple(allowed)}, got {getattr(self, name)!r}")

    def check_types(self, **expected: type) -> None:
        """Nested configs must be of their class (``rpn=RPNConfig``): a dict here means a caller
        skipped :func:`convsight.detection.config.config_from_dict`."""
        for name, cls in expected.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise self.error(f"{name} must be a {cls.__name__}, got {type(value).__name__}")


class Detector(nn.Module):
    """Base class of every detector: sets what they all have and builds the backbone.

    Attributes:
        arch: registry name (``"yolo"``, ``"ssd"``, ...), stored with saved weights (a class attribute
            set by :func:`register_detector`).
        config: the frozen :class:`DetectorConfig` the detector was built from.
        num_classes: object classes (background, where a method has one, is extra and internal).
        postprocess: the model's own :class:`PostprocessConfig` (``config.postprocess``); a call
            that wants other thresholds passes one to ``forward``.
        backbone: ``build_backbone(config.backbone, out_levels=backbone_levels(config),
            weights=config.backbone_weights)``, frozen when ``config.freeze_backbone`` (unless
            the class sets ``has_backbone = False`` and brings its own feature extractor).
        inference_only: True once BatchNorm has been folded into the convs (no training, no saving).
    """

    arch: ClassVar[str] = "detector"
    has_backbone: ClassVar[bool] = True
    inference_only: bool = False  # set by detection.inference.optimize_for_inference (BN folded away)

    def __init__(self, num_classes: int, config: DetectorConfig) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"{self.arch}: num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.config = num_classes, config
        self.postprocess: PostprocessConfig = config.postprocess
        if self.has_backbone:
            self.backbone = build_backbone(config.backbone, out_levels=self.backbone_levels(config),
                                           weights=config.backbone_weights)
            if config.freeze_backbone:
                freeze(self.backbone)

    def backbone_levels(self, config: Any) -> Sequence[int | str] | None:
        """The backbone levels (strides or names) the heads read; None: the backbone's defaults."""
        return None

    @classmethod
    def upgrade_state_dict(cls, state: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """Weights saved by an earlier layout of this class -> today's names (default: unchanged)."""
        return state

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` the detector takes."""
        return tuple(self.config.image_size)  # type: ignore[return-value]

    def train(self, mode: bool = True) -> Detector:
        if mode and self.inference_only:
            raise ConfigError(f"{self.arch}: this detector was optimised for inference (BatchNorm folded into "
                              "the convs) and cannot be trained; load the weights file again to train")
        return super().train(mode)

    def forward(self, images: Tensor, targets: list[Target] | None = None,
                postprocess: PostprocessConfig | None = None) -> DetectorOutput:  # pragma: no cover
        raise NotImplementedError

    def check_inputs(self, images: Tensor, targets: list[Target] | None) -> None:
        """One clear error for the two mistakes everyone makes: wrong image size, wrong target count."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.arch}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"{self.arch}: expected {self.image_size[0]}x{self.image_size[1]} inputs (H x W), "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        if targets is not None and len(targets) != images.shape[0]:
            raise ValueError(f"{self.arch}: {images.shape[0]} images but {len(targets)} targets")


DETECTORS: Registry = Registry("detector architecture")
CONFIGS: dict[str, type[DetectorConfig]] = {}  # arch -> its config class (defaults = the recommended recipe)

D = TypeVar("D", bound=type[Detector])


def register_detector(name: str, config_cls: type[DetectorConfig]) -> Callable[[D], D]:
    """Register a :class:`Detector` subclass, built as ``cls(num_classes, config)``, under ``name``
    with its config class; both learn their ``arch`` from here."""

    def deco(cls: D) -> D:
        DETECTORS.register(name)(cls)
        CONFIGS[name] = config_cls
        cls.arch = name
        config_cls.arch = name
        return cls

    return deco
