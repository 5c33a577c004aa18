"""Training a :class:`~convsight.style.fast.TransformerNet` for one style (Johnson et al. 2016).

Each step: a batch of random square crops ``x`` of the content images, ``y = f_W(x)``, and

    J = (1 - alpha) * Jstyle(y, style) + alpha * Jcontent(y, x) + tv_weight * TV(y)

through a fixed encoder, with the same loss terms as Gatys et al. (:mod:`convsight.style.losses`);
only ``W`` is updated (Adam). The style's Gram matrices are computed once. Seeded: the same config,
images and thread count give the same weights bit for bit on CPU.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from convsight.errors import ConfigError, ConvsightWarning, ImageError
from convsight.io.images import resize_long, resize_short
from convsight.style.encoder import DEFAULT_ENCODER, ENCODERS, build_encoder
from convsight.style.fast import FastStylizer, FastStylizerInfo, TransformerConfig, TransformerNet
from convsight.style.gram import gram_matrix
from convsight.style.losses import LossTerms, StyleLossConfig, content_loss, style_loss, total_variation

_CACHE_LIMIT = 256  # folders up to this many images are decoded once and kept (as uint8, downscaled)


@dataclass(frozen=True)
class FastTrainConfig:
    """Defaults train a usable small model in a few minutes on one CPU core (at 128 px)."""

    steps: int = 400
    batch_size: int = 4
    size: int = 128  # square training crop side
    style_size: int = 256  # the style image's longer side for its Gram matrices
    alpha: float = 0.5  # content weight in J = (1 - alpha) Jstyle + alpha Jcontent
    tv_weight: float = 0.0  # total-variation smoothing of the output
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 100  # steps; 0 = only at the end
    encoder: str = DEFAULT_ENCODER  # the loss network (convsight.style.encoder)
    weights: str = "imagenet"  # the encoder's weights: "imagenet", "random" or a file
    pooling: str = "avg"  # VGG19 only
    channels: int = 16  # the paper: 32 (4x the parameters, ~2.5x slower per step on CPU)
    n_residual: int = 5

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, f"steps={self.steps}: expected >= 1"),
            (1 <= self.batch_size <= 256, f"batch_size={self.batch_size}: expected 1..256"),
            (16 <= self.size <= 1024 and self.size % 4 == 0, f"size={self.size}: expected a multiple of 4 in 16..1024"),
            (16 <= self.style_size <= 4096, f"style_size={self.style_size}: expected 16..4096"),
            (0.0 <= self.alpha <= 1.0, f"alpha={self.alpha}: expected 0..1"),
            (self.tv_weight >= 0 and math.isfinite(self.tv_weight), f"tv_weight={self.tv_weight}: expected >= 0"),
            (0 < self.lr < 1, f"lr={self.lr}: expected 0 < lr < 1"),
            (self.checkpoint_every >= 0, f"checkpoint_every={self.checkpoint_every}: expected >= 0"),
            (self.encoder in ENCODERS, f"unknown style encoder {self.encoder!r}; choose one of {sorted(ENCODERS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        TransformerConfig(self.channels, self.n_residual)  # validates those two


@dataclass
class FastTrainResult:
    stylizer: FastStylizer
    history: list[dict[str, float]] = field(default_factory=list)  # per step: step, total, style, content, tv
    checkpoints: int = 0
    time_s: float = 0.0


class ContentSampler:
    """Random square crops of the images in a folder: scale jitter (shorter side 1-1.5x the crop), a
    random position and a horizontal flip, all drawn from one seeded generator."""

    def __init__(self, paths: Sequence[Path], size: int, generator: torch.Generator) -> None:
        self.paths, self.size, self.gen = list(paths), size, generator
        self.cache: dict[int, Tensor] = {}
        self.bad: set[int] = set()
        if len(self.paths) <= _CACHE_LIMIT:
            for i in range(len(self.paths)):
                self._image(i)
        if len(self.bad) == len(self.paths):
            raise ImageError(f"none of the {len(self.paths)} content images could be read")

    def _image(self, i: int) -> Tensor | None:
        """Image ``i`` as (3, h, w) uint8 with shorter side 1.5x the crop, or None if unreadable."""
        if i in self.cache or i in self.bad:
            return self.cache.get(i)
        from convsight.io.images import load_image_tensor

        try:
            img = load_image_tensor(self.paths[i])
        except ImageError as e:
            self.bad.add(i)
            warnings.warn(f"skipping content image: {e}", ConvsightWarning, stacklevel=2)
            return None
        img = resize_short(img, round(1.5 * self.size)).mul(255).round().to(torch.uint8)
        if len(self.paths) <= _CACHE_LIMIT:
            self.cache[i] = img
        return img

    def _rand(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.gen))

    def sample(self, n: int) -> Tensor:
        """(n, 3, size, size) float in [0, 1]."""
        crops = []
        while len(crops) < n:
            img = self._image(self._rand(len(self.paths)))
            if img is None:
                if len(self.bad) == len(self.paths):  # large folders are decoded lazily
                    raise ImageError(f"none of the {len(self.paths)} content images could be read")
                continue
            short = self.size + self._rand(self.size // 2 + 1)  # scale jitter
            img = resize_short(img.float() / 255, short)
            top, left = self._rand(img.shape[1] - self.size + 1), self._rand(img.shape[2] - self.size + 1)
            crop = img[:, top : top + self.size, left : left + self.size]
            crops.append(crop.flip(-1) if self._rand(2) else crop)
        return torch.stack(crops).clamp(0, 1)


def _progress(total: int, enabled: bool):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from convsight.console import err_console

    return Progress(
        TextColumn("train-fast"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[terms]}"), console=err_console, disable=not enabled, transient=False,
    )


class PerceptualLoss(nn.Module):
    """Johnson et al.'s perceptual loss for one style image, for batches whose content varies.

    The terms are those of :mod:`convsight.style.losses` ("relative" normalisation by default, so
    alpha means what it means for Gatys): style Grams of ``style`` computed once; the content target
    is the encoder's content tap on the network's own input ``x``. forward(y, x) -> batch-mean
    :class:`~convsight.style.losses.LossTerms`.
    """

    def __init__(self, style: Tensor, encoder: str = DEFAULT_ENCODER, weights: str = "imagenet",
                 pooling: str = "avg", alpha: float = 0.5, tv_weight: float = 0.0,
                 normalization: str = "relative") -> None:
        super().__init__()
        spec = ENCODERS[encoder] if encoder in ENCODERS else None
        if spec is None:
            raise ConfigError(f"unknown style encoder {encoder!r}; choose one of {sorted(ENCODERS)}")
        self.config = StyleLossConfig.equal(spec.style_taps, spec.content_tap, alpha=alpha, tv_weight=tv_weight,
                                            normalization=normalization)
        self.encoder = build_encoder(encoder, weights, pooling, self.config.taps)
        with torch.no_grad():
            feats = self.encoder(style[None])  # tap -> (1, C, h, w)
            self.targets = {t: gram_matrix(feats[t]) for t in spec.style_taps}  # (1, C, C) each

    def forward(self, y: Tensor, x: Tensor) -> LossTerms:
        """y: the network's output, x: its input, both (B, 3, H, W) in [0, 1]."""
        cfg = self.config
        fy = self.encoder(y)
        with torch.no_grad():
            target = self.encoder(x)[cfg.content_tap]
        js = style_loss(fy, self.targets, cfg.layer_weights, cfg.normalization).mean()
        jc = content_loss(fy[cfg.content_tap], target, cfg.normalization).mean() if cfg.alpha > 0 else js.new_zeros(())
        tv = total_variation(y).mean() if cfg.tv_weight > 0 else js.new_zeros(())
        total = (1 - cfg.alpha) * js + cfg.alpha * jc + cfg.tv_weight * tv
        return LossTerms(total, js.detach(), jc.detach(), tv.detach())


def _encoder_label(cfg: FastTrainConfig, pretrained: bool) -> str:
    """"mobilenet_v2:imagenet", "vgg19:random", "vgg19:file:w.safetensors" (no machine paths in metadata)."""
    weights = cfg.weights.strip().lower()
    if weights in ("imagenet", "pretrained"):
        weights = "imagenet" if pretrained else "random (imagenet unavailable)"
    elif weights not in ("random", "none", ""):
        weights = f"file:{Path(cfg.weights).name}"
    pooling = f":{cfg.pooling}pool" if cfg.encoder == "vgg19" else ""
    return f"{cfg.encoder}:{weights or 'random'}{pooling}"


def train_fast(
    style: str | os.PathLike[str] | Tensor,
    content_dir: str | os.PathLike[str],
    config: FastTrainConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    style_name: str | None = None,
) -> FastTrainResult:
    """Train a feed-forward stylizer for ``style`` (a path or a (3, H, W) [0, 1] tensor) on the images
    in ``content_dir``; with ``out``, the model file is (re)written every ``checkpoint_every`` steps
    and at the end, atomically, so an interrupted run leaves a usable model."""
    from convsight.io.images import list_images
    from convsight.style.offline import load_style_input

    cfg = config or FastTrainConfig()
    paths = list_images(content_dir)  # ImageError: folder missing / no images
    if out is not None and Path(out).suffix.lower() != ".safetensors":
        raise ConfigError(f"{out}: the model is written as .safetensors; use that suffix")
    if isinstance(style, Tensor):
        style_img, name = style, style_name or "tensor"
    else:
        style_img, name = load_style_input(str(style)), style_name or Path(style).name  # a file or "hubble"...
    style_img = resize_long(style_img.float(), cfg.style_size)

    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = ContentSampler(paths, cfg.size, gen)
    loss_fn = PerceptualLoss(style_img, cfg.encoder, cfg.weights, cfg.pooling, cfg.alpha, cfg.tv_weight)
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG
        torch.manual_seed(cfg.seed)
        net = TransformerNet(TransformerConfig(cfg.channels, cfg.n_residual))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    info = dict(style=name, encoder=_encoder_label(cfg, loss_fn.encoder.pretrained), alpha=cfg.alpha,
                size=cfg.size, seed=cfg.seed)
    result = FastTrainResult(FastStylizer(net, FastStylizerInfo(steps=0, **info)))

    def checkpoint(step: int) -> None:
        result.stylizer = FastStylizer(net, FastStylizerInfo(steps=step, **info))
        if out is not None:
            result.stylizer.save(out)
            result.checkpoints += 1
        net.train()  # FastStylizer puts the net in eval mode

    start = time.perf_counter()
    net.train()
    with _progress(cfg.steps, progress) as bar:
        task = bar.add_task("train", total=cfg.steps, terms="")
        for step in range(1, cfg.steps + 1):
            x = sampler.sample(cfg.batch_size)  # (B, 3, S, S)
            y = net(x)  # (B, 3, S, S)
            terms = loss_fn(y, x)
            if not torch.isfinite(terms.total):
                raise ConfigError(f"the loss became {terms.total.item()} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            opt.step()
            record = {"step": float(step), **terms.as_floats()}
            result.history.append(record)
            text = " ".join(f"{k} {v:.3g}" for k, v in record.items() if k != "step" and (k != "tv" or cfg.tv_weight))
            bar.update(task, advance=1, terms=text)
            if out is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                checkpoint(step)
    checkpoint(cfg.steps)
    result.stylizer.net.eval()
    result.time_s = time.perf_counter() - start
    return result
