"""Style transfer from Python: Gatys et al. in one call, or a trained feed-forward network.

    out = convsight.stylize("photo.jpg", "swirl", alpha=0.1, size=256, steps=300)   # ImageResult
    out.save("styled.png")
    fast = convsight.FastStylizer.load("mosaic")    # a shipped model's name, or a .safetensors file
    fast("chelsea").save("mosaic.png")

Content and style are any image input (:mod:`convsight.api.images`), built-in names included, as
``convsight style run`` takes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from convsight.api.images import ImageInput, ImageResult, to_float
from convsight.errors import ConfigError
from convsight.style.fast import FastStylizer as _FastStylizer
from convsight.style.gatys import GatysConfig


def stylize(content: ImageInput, style: ImageInput | Sequence[ImageInput], alpha: float = 0.1, size: int = 256,
            steps: int = 300, seed: int = 0, callback: Callable[[int, int, dict[str, float]], None] | None = None,
            **options: Any) -> ImageResult:
    """Gatys, Ecker & Bethge: optimise an image with ``content``'s features and ``style``'s Gram
    matrices, J = (1 - alpha) Jstyle + alpha Jcontent. What ``convsight style run`` does.

    style: one image, or a list/tuple of images blended (``style_blend=(0.7, 0.3)`` weighs them);
    size: long side of the output in pixels; steps: loss evaluations (L-BFGS); seed: same seed,
    same image; callback: called as ``callback(evaluation, total, loss_terms)`` after each loss
    evaluation (a progress bar). options: any other :class:`~convsight.style.gatys.GatysConfig`
    field (``colour="luminance"``, ``levels=2``, ``encoder="vgg19"``, ``precision="bf16"``,
    ``frames_every=10``, ...). Returns the picture with ``info`` = encoder, seconds, output size,
    loss terms of the last evaluation, and ``frames`` when ``frames_every`` asked for them.
    """
    from convsight.style.gatys import GatysStylizer

    try:
        config = GatysConfig(alpha=alpha, size=size, steps=steps, seed=seed, **options)
    except TypeError as e:  # an unknown option name
        fields = ", ".join(sorted(GatysConfig.__dataclass_fields__))
        raise ConfigError(f"stylize: {e}; options are {fields}") from None
    styles = [to_float(s) for s in style] if isinstance(style, (list, tuple)) else [to_float(style)]
    result = GatysStylizer(styles, config, callback=callback).run(to_float(content))
    last = result.history[-1] if result.history else {}
    info = {"method": "gatys", "encoder": result.encoder, "alpha": alpha, "time_s": result.time_s,
            "size": list(result.sizes[-1]) if result.sizes else None, "evaluations": len(result.history), **last}
    return ImageResult(_uint8(result.image), info, [(step, _uint8(img)) for step, img in result.frames])


class FastStylizer(_FastStylizer):
    """A feed-forward stylizer (Johnson et al.): one forward pass per image, for the one style it
    was trained on. ``FastStylizer.load("mosaic")`` loads the shipped model; call it on any image input.
    """

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FastStylizer:
        """A shipped model by name (``"mosaic"``; ``convsight.style.fast.shipped_fast_stylizers()``
        lists them) or a file written by ``convsight style train-fast``."""
        from convsight.style.fast import resolve_model

        return super().load(resolve_model(path), device)  # type: ignore[return-value]

    def __call__(self, image: ImageInput) -> ImageResult:
        """The stylised ``image`` at its own size: an :class:`~convsight.api.images.ImageResult`."""
        out = self.stylize(to_float(image))
        return ImageResult(_uint8(out), {"method": "fast", "style": self.info.style, "encoder": self.info.encoder})


def _uint8(image: torch.Tensor) -> np.ndarray:
    from convsight.io.images import to_uint8

    return to_uint8(image)
