"""convsight: the classic fun ways to use ConvNets — object detection (the whole lineage), faces and
style transfer — offline, on one backbone family, one dataset API and one evaluator.

    import convsight
    det = convsight.load_detector("ssd")                  # detection: .predict(images) -> results
    pipe = convsight.FacePipeline.pretrained()            # faces: .detect / .embed / .verify
    convsight.stylize("chelsea", "swirl", steps=50)       # style (or convsight.FastStylizer.load("mosaic"))
    convsight.evaluate("data/val", "results.json")        # COCO and VOC metrics

Importing the package has no side effects: nothing is downloaded, loaded or configured here, and
torch is not imported until one of the names above is first used (PEP 562 ``__getattr__``), so
``import convsight`` stays fast.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("convsight")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from convsight.errors import ConvsightError, ConvsightWarning

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads them on first use
    from convsight.api import (
        DetectionResult,
        Detector,
        FaceCountError,
        FacePipeline,
        FaceResult,
        FastStylizer,
        Gallery,
        ImageResult,
        Verification,
        evaluate,
        load_detector,
        stylize,
    )

# Public name -> the module that defines it (all under convsight.api, imported on first access).
_LAZY = {
    "load_detector": "convsight.api.detect", "Detector": "convsight.api.detect",
    "DetectionResult": "convsight.api.detect",
    "FacePipeline": "convsight.api.faces", "FaceResult": "convsight.api.faces", "Gallery": "convsight.api.faces",
    "Verification": "convsight.api.faces", "FaceCountError": "convsight.api.faces",
    "stylize": "convsight.api.style", "FastStylizer": "convsight.api.style", "ImageResult": "convsight.api.images",
    "evaluate": "convsight.api.evaluate",
}

__all__ = [
    "ConvsightError", "ConvsightWarning", "__version__",
    "load_detector", "Detector", "DetectionResult",
    "FacePipeline", "FaceResult", "Gallery", "Verification", "FaceCountError",
    "stylize", "FastStylizer", "ImageResult",
    "evaluate",
]


def __getattr__(name: str) -> Any:
    """Load a public API name on first use (PEP 562) and keep it in the module's namespace."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'convsight' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
