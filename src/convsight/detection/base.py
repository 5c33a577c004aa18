"""What every detector shares: the base module, the postprocess config and the registry by name.

A detector is a composition, ``backbone + head + loss + postprocess`` (torchvision's GeneralizedRCNN
idea): each method file (``localization.py``, ``sliding_window.py``, ``rcnn.py``, ``fast_rcnn.py``,
``faster_rcnn.py``, ``yolo.py``, ``ssd.py``) defines a small frozen config dataclass, a
:class:`Detector` subclass and a builder registered in :data:`DETECTORS`.

Contract of ``Detector.forward(images, targets=None) -> DetectorOutput``:

- images: ``(B, 3, H, W)`` float in ``[0, 1]`` with ``(H, W) == config.image_size`` (the data
  pipeline resizes; the backbone normalises);
- targets: one :class:`~convsight.structures.Target` per image (boxes xyxy absolute pixels in the
  input's coordinates, 0-based labels) or ``None``;
- returns ``losses`` (named scalar tensors) whenever targets are given, in train *and* eval mode (the
  trainer's validation loss), and ``detections`` (one :class:`Detections` per image, after
  :class:`PostprocessConfig`) in eval mode; in train mode detections may be skipped (empty list).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor, nn

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

    def __call__(
        self, boxes: Tensor, scores: Tensor, labels: Tensor | None = None, image_size: tuple[int, int] | None = None
    ) -> Detections:
        """One image: ``boxes (N, 4)`` or ``(N, C, 4)``, ``scores (N, C)`` (no background column) or
        ``scores (N,)`` with ``labels (N,)`` -> :class:`Detections` clipped to ``image_size = (H, W)``."""
        return postprocess_detections(
            boxes, scores, labels, iou_threshold=self.iou_threshold, score_threshold=self.score_threshold,
            topk=self.topk, pre_nms_topk=self.pre_nms_topk, image_size=image_size, min_size=self.min_size,
        )


class Detector(nn.Module):
    """Base class of every detector; subclasses set the attributes and implement ``forward``.

    Attributes:
        arch: registry name (``"yolo"``, ``"ssd"``, ...), stored with saved weights.
        config: the frozen config dataclass the detector was built from.
        num_classes: object classes (background, where a method has one, is extra and internal).
        postprocess: a :class:`PostprocessConfig`; replace it to change thresholds at inference.
        inference_only: True once BatchNorm has been folded into the convs (no training, no saving).
    """

    arch: str
    config: Any
    num_classes: int
    postprocess: PostprocessConfig
    inference_only: bool = False  # set by detection.inference.optimize_for_inference (BN folded away)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` the detector takes."""
        return tuple(self.config.image_size)  # type: ignore[return-value]

    def train(self, mode: bool = True) -> Detector:
        if mode and self.inference_only:
            raise ConfigError(f"{self.arch}: this detector was optimised for inference (BatchNorm folded into "
                              "the convs) and cannot be trained; load the weights file again to train")
        return super().train(mode)

    def forward(self, images: Tensor, targets: list[Target] | None = None) -> DetectorOutput:  # pragma: no cover
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
CONFIGS: dict[str, type] = {}  # arch name -> its config dataclass (defaults = the recommended recipe)

B = TypeVar("B", bound=Callable[..., Detector])


def register_detector(name: str, config_cls: type) -> Callable[[B], B]:
    """Register ``build(num_classes: int, config) -> Detector`` (random or backbone-only weights) under
    ``name`` together with its config class."""

    def deco(build: B) -> B:
        DETECTORS.register(name)(build)
        CONFIGS[name] = config_cls
        return build

    return deco
