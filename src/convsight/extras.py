"""The optional parts of convsight, and the one line that says how to get a missing one.

``pip install convsight`` brings detection, faces (detect, align, embed, verify) and style. Three
extras add the heavy pieces that only some users want (pyproject.toml's ``optional-dependencies``):

* ``web``: ``convsight serve`` (FastAPI, uvicorn, python-multipart);
* ``export``: ONNX export and running exported files (onnx, onnxruntime);
* ``faces``: the face gallery's search index (faiss-cpu): enrol, identify, list, remove.

Code that needs one calls :func:`require` (before it starts any work) or :func:`import_extra`; when
the module is missing it raises :class:`MissingExtraError`, whose message is the exact pip command,
so the CLI prints one line and exits 2 and a library user gets a :class:`ConvsightError`.
Modules are looked up with ``find_spec``: checking imports nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from convsight.errors import ConvsightError

# extra -> the importable modules it provides (one of a tuple is enough: python-multipart is
# ``python_multipart`` since 0.0.13 and ``multipart`` before).
EXTRAS: dict[str, tuple[str | tuple[str, ...], ...]] = {
    "web": ("fastapi", "uvicorn", ("python_multipart", "multipart")),
    "export": ("onnx", "onnxruntime"),
    "faces": ("faiss",),
}


class MissingExtraError(ConvsightError):
    """An optional part of convsight is not installed; the message names the pip command."""


def install_hint(extra: str) -> str:
    """``pip install 'convsight[web]'`` for ``extra="web"``."""
    if extra not in EXTRAS:
        raise ValueError(f"no such extra: {extra!r} (known: {', '.join(EXTRAS)})")
    return f"pip install 'convsight[{extra}]'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed (empty when it is complete)."""
    install_hint(extra)  # an unknown extra is a programming error: say so
    out = []
    for module in EXTRAS[extra]:
        options = (module,) if isinstance(module, str) else module
        if not any(_installed(m) for m in options):
            out.append(options[0])
    return out


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` ("``feature`` needs the web extra: pip install ...") unless
    every module of ``extra`` is installed. feature: what the user asked for, e.g. ``convsight serve``."""
    lacking = missing(extra)
    if lacking:
        raise MissingExtraError(f"{feature} needs the {extra} extra ({', '.join(lacking)} not installed): "
                                f"{install_hint(extra)}")


def import_extra(module: str, extra: str, feature: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` naming the pip command of ``extra`` when it
    (not something it imports in turn) is not installed."""
    if not _installed(module):
        raise MissingExtraError(f"{feature} needs the {extra} extra ({module} not installed): {install_hint(extra)}")
    return importlib.import_module(module)
