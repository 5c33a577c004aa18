"""The lecture's "varying alpha" figure as one image: content, style, then one result per alpha,
each under a label. Every alpha starts from the same seed and init, so only alpha differs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from convsight.errors import ConfigError
from convsight.io.images import resize_long
from convsight.style.gatys import GatysResult, GatysStylizer


def parse_alphas(text: str) -> list[float]:
    """``"0.001,0.01,0.1"`` -> [0.001, 0.01, 0.1]; ConfigError on a bad or out-of-range value."""
    try:
        alphas = [float(a) for a in text.split(",") if a.strip()]
    except ValueError as e:
        raise ConfigError(f"--alphas {text!r}: expected comma-separated numbers in [0, 1]") from e
    if not alphas or any(not 0.0 <= a <= 1.0 for a in alphas):
        raise ConfigError(f"--alphas {text!r}: expected comma-separated numbers in [0, 1]")
    return alphas


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _tile(image: Tensor, cell: int) -> Image.Image:
    arr = (resize_long(image.float(), cell).clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    canvas = Image.new("RGB", (cell, cell), (255, 255, 255))
    im = Image.fromarray(arr)
    canvas.paste(im, ((cell - im.width) // 2, (cell - im.height) // 2))
    return canvas


def labelled_grid(images: Sequence[Tensor], labels: Sequence[str], columns: int | None = None,
                  cell: int = 256, pad: int = 6) -> np.ndarray:
    """Images (3, H, W) in [0, 1] with a text label above each -> (H', W', 3) uint8."""
    if len(images) != len(labels) or not images:
        raise ConfigError("labelled_grid: one label per image, at least one image")
    columns = columns or len(images)
    rows = -(-len(images) // columns)
    text_h = max(14, cell // 12)
    font = _font(text_h - 2)
    w = columns * (cell + pad) + pad
    h = rows * (cell + text_h + pad) + pad
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(zip(images, labels)):
        r, c = divmod(i, columns)
        x0, y0 = pad + c * (cell + pad), pad + r * (cell + text_h + pad)
        draw.text((x0 + 2, y0), label, fill=(0, 0, 0), font=font)
        sheet.paste(_tile(img, cell), (x0, y0 + text_h))
    return np.asarray(sheet)


def alpha_sweep(stylizer: GatysStylizer, content: Tensor, style: Tensor, alphas: Sequence[float],
                cell: int = 256, on_result: Callable[[float, GatysResult], None] | None = None
                ) -> tuple[np.ndarray, list[GatysResult]]:
    """Run ``stylizer`` once per alpha (same encoder, seed and init) -> (grid image, results)."""
    results = []
    for a in alphas:
        r = stylizer.with_config(alpha=float(a)).run(content)
        results.append(r)
        if on_result is not None:
            on_result(a, r)
    images = [content, style, *[r.image for r in results]]
    labels = ["content", "style", *[f"alpha = {a:g}" for a in alphas]]
    return labelled_grid(images, labels, cell=cell), results
