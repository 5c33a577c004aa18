"""convsight's public Python API, one import per capability (re-exported lazily by ``convsight``).

- detection: :func:`load_detector` -> :class:`Detector`, whose ``predict`` returns
  :class:`DetectionResult` objects (``.boxes/.scores/.labels/.names``, ``.to_json()``, ``.plot()``,
  ``.save(path)``);
- faces: :class:`FacePipeline` (``.pretrained()``, ``.detect/.embed/.verify``, galleries), :class:`Gallery`;
- style: :func:`stylize` (Gatys) and :class:`FastStylizer` (``.load("mosaic")``), -> :class:`ImageResult`;
- scoring: :func:`evaluate` -> :class:`~convsight.detection.metrics.DetectionMetrics`.

Images are given as a path (or a built-in name), a PIL image, an ``(H, W, 3)`` uint8 array or a
``(3, H, W)`` float tensor in ``[0, 1]`` (:mod:`convsight.api.images`).
"""

from __future__ import annotations

from convsight.api.detect import DetectionResult, Detector, load_detector
from convsight.api.evaluate import evaluate
from convsight.api.faces import FaceCountError, FacePipeline, FaceResult, Gallery, Verification
from convsight.api.images import ImageInput, ImageResult
from convsight.api.style import FastStylizer, stylize

__all__ = [
    "DetectionResult", "Detector", "FaceCountError", "FacePipeline", "FaceResult", "FastStylizer", "Gallery",
    "ImageInput", "ImageResult", "Verification", "evaluate", "load_detector", "stylize",
]
