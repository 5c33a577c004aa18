"""Safe image loading: every image a user hands us goes through :func:`load_image`.

What it guards against, each as one :class:`~convsight.errors.ImageError` naming the path and the
reason: missing files, folders, empty files, non-images (whatever their extension), truncated or
corrupt data, and decompression bombs (the pixel count is checked from the header, before decoding).
What it normalises: EXIF orientation, and every mode (grayscale, palette, CMYK, 16-bit, alpha) to 8-bit
RGB. And the one resize every layer uses (:func:`resize_image`, :func:`resize_long`, :func:`resize_short`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from convsight.errors import ImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
# 80 megapixels holds any camera photo (a 10000x8000 scan) but stops a 30000x30000 bomb; override
# with CONVSIGHT_MAX_PIXELS or the max_pixels argument.
DEFAULT_MAX_PIXELS = 80_000_000


def max_pixels_default() -> int:
    env = os.environ.get("CONVSIGHT_MAX_PIXELS")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ImageError(f"CONVSIGHT_MAX_PIXELS must be an integer, got {env!r}") from None
    return DEFAULT_MAX_PIXELS


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Alpha is composited onto white (what a viewer shows)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # PIL's convert('L') clips 16-bit data instead of scaling it; scale by the type's range.
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        if im.mode == "F":
            top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        a8 = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a8, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from the file header without decoding pixels (after EXIF rotation)."""
    path = Path(path)
    with _opened(path, "cannot read image header") as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


@contextmanager
def _opened(path: Path, failure: str) -> Iterator[Image.Image]:
    """``Image.open`` with every way a file can be bad turned into one :class:`ImageError` naming it;
    ``failure`` words the generic case (OSError and friends) for the caller's stage."""
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Our own limit (load_image) replaces PIL's global one, which we do not touch.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # PIL refuses before we can read the size ourselves
        raise ImageError(f"{path}: image is too large to open, decompression-bomb guard ({e})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        # PIL reports truncation as OSError("image file is truncated ...") and some corrupt headers as
        # SyntaxError / ValueError.
        raise ImageError(f"{path}: {failure} ({e})") from None
    except Image.DecompressionBombWarning:  # pragma: no cover - only if a caller turned warnings into errors
        raise ImageError(f"{path}: image is too large (decompression-bomb guard)") from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")


def load_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array of shape ``(H, W, 3)``.

    Raises :class:`ImageError` (with the path and the reason) for anything that is not a complete,
    reasonably sized image.
    """
    path = Path(path)
    limit = max_pixels if max_pixels is not None else max_pixels_default()
    with _opened(path, "truncated or corrupt image") as im:
        w, h = im.size
        if w * h > limit:
            raise ImageError(
                f"{path}: {w}x{h} = {w * h / 1e6:.0f} megapixels exceeds the limit of "
                f"{limit / 1e6:.0f} megapixels (decompression-bomb guard; set CONVSIGHT_MAX_PIXELS "
                "to allow larger images)"
            )
        im.load()  # decode now, inside the guard: truncated data fails here
        im = ImageOps.exif_transpose(im) or im
        arr = np.array(_to_rgb(im), dtype=np.uint8)  # one writable copy
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"{path}: could not convert to RGB (got shape {arr.shape})")
    return arr


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(3, H, W) float32`` in ``[0, 1]`` (the package's image convention)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float in ``[0, 1]`` -> ``(H, W, 3) uint8`` (for drawing and saving)."""
    return (image.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()).copy()


def load_image_tensor(path: str | os.PathLike[str], max_pixels: int | None = None) -> torch.Tensor:
    """:func:`load_image` as a ``(3, H, W) float32`` tensor in ``[0, 1]``."""
    return to_tensor(load_image(path, max_pixels))


def save_image(image: np.ndarray | torch.Tensor, path: str | os.PathLike[str], quality: int = 95) -> Path:
    """Save an RGB image atomically; the format follows the suffix (``.png``, ``.jpg``...)."""
    from convsight.io.atomic import atomic_path

    arr = to_uint8(image) if isinstance(image, torch.Tensor) else image
    path = Path(path)
    with atomic_path(path) as tmp:
        fmt = Image.registered_extensions().get(path.suffix.lower())
        if fmt is None:
            raise ImageError(f"{path}: unknown image extension {path.suffix!r}")
        kwargs = {"quality": quality} if fmt == "JPEG" else {}
        Image.fromarray(arr).save(tmp, format=fmt, **kwargs)
    return path


def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files below ``folder`` (by extension), sorted; a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: folder not found")
    pattern = "**/*" if recursive else "*"
    found = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not found:
        raise ImageError(f"{folder}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return found


# ---- resizing: one antialiased bilinear resample, three ways to name the target size -------------


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(3, H, W)`` in ``[0, 1]`` -> ``(3, h, w)``: bilinear, antialiased when shrinking, clamped to
    ``[0, 1]`` (bilinear interpolation with antialiasing can overshoot by a hair). Same size: returned as is."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


def resize_long(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(3, H, W)`` -> long side ``size``, aspect kept (see :func:`resize_image`)."""
    h, w = image.shape[-2:]
    s = size / max(h, w)
    return resize_image(image, (max(1, round(h * s)), max(1, round(w * s))))


def resize_short(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(3, H, W)`` -> short side ``size``, aspect kept, neither side below ``size`` (see :func:`resize_image`)."""
    h, w = image.shape[-2:]
    s = size / min(h, w)
    return resize_image(image, (max(size, round(h * s)), max(size, round(w * s))))
