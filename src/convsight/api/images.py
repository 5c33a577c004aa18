"""The image kinds every public function accepts, and the image result they return.

An *image input* is one of:

- a path (``str`` or ``os.PathLike``) to an image file, or, when no such file exists, one of the
  built-in image names that work offline (``astronaut``, ``chelsea``, ``coffee``, ... see
  :data:`convsight.style.offline.BUILTIN_NAMES`), as the command line's ``style`` group accepts;
- a PIL image (any mode; EXIF orientation applied, alpha composited onto white);
- a numpy array ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` uint8 grey);
- a torch tensor ``(3, H, W)``, float in ``[0, 1]`` or uint8.

Anything else is an :class:`~convsight.errors.ImageError` that says what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from convsight.errors import ImageError

ImageInput: TypeAlias = str | os.PathLike[str] | Image.Image | np.ndarray | Tensor


def is_batch(images: object) -> bool:
    """True for a list/tuple of images or a ``(B, 3, H, W)`` tensor; False for one image."""
    return isinstance(images, (list, tuple)) or (isinstance(images, Tensor) and images.ndim == 4)


def as_list(images: ImageInput | list[ImageInput] | tuple[ImageInput, ...]) -> list[ImageInput]:
    """One image or a batch (list, tuple, ``(B, 3, H, W)`` tensor) -> a list of images."""
    if isinstance(images, Tensor) and images.ndim == 4:
        return list(images.unbind(0))
    return list(images) if isinstance(images, (list, tuple)) else [images]


def source_of(image: ImageInput) -> str | None:
    """The path an input came from (as given), or None for in-memory images."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else None


def to_array(image: ImageInput) -> np.ndarray:
    """Any image input -> ``(H, W, 3)`` uint8 RGB (a new array only where conversion needs one)."""
    if isinstance(image, (str, os.PathLike)):
        return _from_path(os.fspath(image))
    if isinstance(image, Image.Image):
        from convsight.io.images import _to_rgb  # the one mode conversion load_image uses

        return np.array(_to_rgb(ImageOps.exif_transpose(image) or image), dtype=np.uint8)
    if isinstance(image, np.ndarray):
        return _from_numpy(image)
    if isinstance(image, Tensor):
        return _from_tensor(image)
    raise ImageError(f"expected an image path, PIL image, (H, W, 3) uint8 array or (3, H, W) tensor, "
                     f"got {type(image).__name__}")


def to_float(image: ImageInput) -> Tensor:
    """Any image input -> ``(3, H, W)`` float32 in ``[0, 1]`` (a float tensor passes through)."""
    if isinstance(image, Tensor) and image.is_floating_point():
        _check_tensor(image)
        return image.float()
    from convsight.io.images import to_tensor

    return to_tensor(to_array(image))


def _from_path(path: str) -> np.ndarray:
    from convsight.io.images import load_image
    from convsight.style.offline import BUILTIN_NAMES, builtin_image

    if not Path(path).exists() and path.strip().lower() in BUILTIN_NAMES:
        return builtin_image(path)
    return load_image(path)


def _from_numpy(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise ImageError(f"a numpy image must be uint8 (H, W, 3), got dtype {a.dtype}; "
                         "for float pixels in [0, 1] pass a (3, H, W) torch tensor")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise ImageError(f"a numpy image must have shape (H, W, 3) (RGB), got {a.shape}")
    return np.ascontiguousarray(a[..., :3])


def _check_tensor(t: Tensor) -> None:
    if t.ndim != 3 or t.shape[0] != 3 or min(t.shape[1:]) < 1:
        raise ImageError(f"a tensor image must have shape (3, H, W), got {tuple(t.shape)}")


def _from_tensor(t: Tensor) -> np.ndarray:
    _check_tensor(t)
    if t.dtype == torch.uint8:
        return t.detach().permute(1, 2, 0).cpu().numpy().copy()
    if not t.is_floating_point():
        raise ImageError(f"a tensor image must be float in [0, 1] or uint8, got {t.dtype}")
    from convsight.io.images import to_uint8

    return to_uint8(t)


def save_rgb(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write ``(H, W, 3)`` uint8 to ``path`` atomically (format from the suffix)."""
    from convsight.io.images import save_image

    return save_image(image, path)


@dataclass(frozen=True, eq=False)
class ImageResult:
    """An image that a call produced (a stylisation).

    image: ``(H, W, 3)`` uint8 RGB; info: what made it (method, encoder, time, loss terms);
    frames: ``(evaluation, (h, w, 3) uint8)`` snapshots along the way, when the call asked for them.
    """

    image: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def tensor(self) -> Tensor:
        """The image as ``(3, H, W)`` float32 in ``[0, 1]``."""
        from convsight.io.images import to_tensor

        return to_tensor(self.image)

    def plot(self) -> np.ndarray:
        """The image, ``(H, W, 3)`` uint8 (for matplotlib's ``imshow``)."""
        return self.image

    def to_pil(self) -> Image.Image:
        """The image as a PIL image."""
        return Image.fromarray(self.image)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image to ``path`` (``.png``, ``.jpg``, ...) atomically; returns the path."""
        return save_rgb(self.image, path)
