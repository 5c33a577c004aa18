"""convsight: the classic fun ways to use ConvNets — object detection (the whole lineage), faces and
style transfer — offline, on one backbone family, one dataset API and one evaluator.

Importing the package has no side effects: nothing is downloaded, loaded or configured here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("convsight")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from convsight.errors import ConvsightError, ConvsightWarning

__all__ = ["ConvsightError", "ConvsightWarning", "__version__"]
