"""Detectors that take more than one input size: the range they take, and the size each image runs at.

A detector built from the lineage's grids and anchors (YOLO, SSD, Faster R-CNN here) is fully
convolutional: its grids follow the feature maps, and its anchors / default boxes are pixel sizes
set once from ``config.image_size`` (the size it was built, and mostly trained, at). So the same
weights run at another input size, and an object keeps the pixel size it was learnt at, as long as
the input is not resized. Its config field ``input_sides = (lo, hi)`` says so:

- at prediction, each image runs at its own size, scaled up until its shorter side reaches ``lo`` and
  down until its longer side fits ``hi`` (aspect kept), each side then rounded to a multiple of 32
  (the backbone's coarsest stride): :func:`input_size_for`. Torchvision's detection transform does
  the same with ``min_size`` / ``max_size``, but always scales the shorter side to ``min_size``; here
  an image between the bounds keeps its pixels, so objects keep the scale they were trained at;
- in training, each batch is rescaled so its shorter side is a random multiple of 32 in ``[lo, hi]``
  (:class:`convsight.training.batches.MultiScaleStep`, called by ``engine.train``): multi-scale
  training, so objects are also learnt at the pixel sizes that larger inputs hold.

``input_sides = None`` (the default, and every file saved before it existed) keeps the fixed input:
every image resized to ``image_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from convsight.detection.base import Detector
from convsight.errors import ConfigError
from convsight.structures import Target

MULTIPLE = 32  # every backbone's coarsest stride: a side that 32 divides gives whole grid cells


def check_input_sides(arch: str, sides: Sequence[int] | None) -> None:
    """``sides``: None or ``(lo, hi)``, multiples of 32 with ``32 <= lo <= hi`` (a config's check)."""
    if sides is None:
        return
    if (len(sides) != 2 or not all(isinstance(s, int) and s % MULTIPLE == 0 for s in sides)
            or not MULTIPLE <= sides[0] <= sides[1]):
        raise ConfigError(f"{arch}: input_sides must be (lo, hi), multiples of {MULTIPLE} with "
                          f"{MULTIPLE} <= lo <= hi, got {tuple(sides)}")


def input_size_for(hw: Sequence[int], sides: Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` an image of ``hw`` runs at, for ``input_sides = (lo, hi)`` (see the module doc).

    >>> input_size_for((192, 192), (256, 512)), input_size_for((448, 448), (256, 512))
    ((256, 256), (448, 448))
    """
    h, w = hw
    lo, hi = sides
    scale = max(1.0, lo / min(h, w))  # small images up: the shorter side reaches lo
    scale = min(scale, hi / max(h, w))  # large ones down: the longer side fits hi
    return tuple(min(hi, max(MULTIPLE, round(v * scale / MULTIPLE) * MULTIPLE)) for v in (h, w))  # type: ignore[return-value]


def sides_of(model: object) -> tuple[int, int] | None:
    """A detector's ``input_sides`` (None: it takes ``image_size`` only)."""
    sides = getattr(getattr(model, "config", None), "input_sides", None)
    return tuple(sides) if sides is not None else None  # type: ignore[return-value]


def check_sized_inputs(self: Detector, images: Tensor, targets: Sequence[Target] | None) -> None:
    """``Detector.check_inputs`` of a detector whose config has ``input_sides`` (a class sets
    ``check_inputs = check_sized_inputs``): unset, inputs must be ``image_size``; set, any sides that
    32 divides (the range is where the engine puts them, not a limit of the model)."""
    if sides_of(self) is None:
        Detector.check_inputs(self, images, targets)
        return
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{self.arch}: expected images (B, 3, H, W), got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h % MULTIPLE or w % MULTIPLE:
        raise ValueError(f"{self.arch}: expected input sides that are multiples of {MULTIPLE} "
                         f"(input_sides is set), got {h}x{w}")
    if targets is not None and len(targets) != images.shape[0]:
        raise ValueError(f"{self.arch}: {images.shape[0]} images but {len(targets)} targets")
