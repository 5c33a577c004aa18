"""Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural Networks":
optimise the pixels of an image so its encoder features have the content image's activations
and the style image's Gram matrices, J = (1 - alpha) Jstyle + alpha Jcontent (:mod:`.losses`).

What makes it fast without changing the result: the encoder is truncated after the last tap and
never copied; style Grams and content features are computed once under no_grad; the forward runs
channels-last, optionally under bfloat16 autocast (``precision="bf16"``, or ``"auto"``: bf16 only
on CPUs that run it natively; Grams and losses stay float32); L-BFGS runs as one call with exactly ``steps`` loss evaluations.

What makes it reach a given loss in less time (all off by default; measured in benchmarks/style.py):
``first_step`` (a well-scaled first L-BFGS step instead of torch's tiny one, which its line search
spends evaluations growing), ``bounds="loss"`` (the loss sees the pixels clipped, as they will be
written, so no evaluation is spent on values clipping takes away), ``levels`` + ``coarse_steps``
(coarse-to-fine: evaluations at half size cost a quarter), ``target_loss`` (stop once it is reached).

Beyond the paper: colour preservation (:mod:`.colour`), several style images blended by weights
(their Gram matrices averaged), coarse-to-fine multi-scale with a memory-aware maximum size,
frames every N evaluations, deterministic given the seed.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from convsight.errors import ConfigError, ConvsightWarning
from convsight.io.images import resize_long
from convsight.precision import PRECISIONS, resolve_precision
from convsight.style import colour
from convsight.style.base import Stylizer
from convsight.style.encoder import DEFAULT_ENCODER, StyleEncoder, build_encoder, encoder_spec
from convsight.style.losses import StyleContentLoss, StyleLossConfig

StepCallback = Callable[[int, int, dict[str, float]], None]  # (evaluation, total, loss terms)

# The options that reach a loss soonest (benchmarks/style.py, "ours, fast"; `style run --fast`): the loss
# sees the clipped pixels, a first L-BFGS step of 0.05 per pixel, and 15 evaluations at half size first.
FAST_OPTIONS: dict[str, object] = {"bounds": "loss", "first_step": 0.05, "levels": 2, "coarse_steps": 15}


@dataclass(frozen=True)
class GatysConfig:
    """Options of the optimisation. ``steps`` counts loss evaluations (per level when multi-scale)."""

    alpha: float = 0.1
    size: int = 256  # long side of the output, pixels
    steps: int = 300
    optimizer: str = "lbfgs"  # "lbfgs" (the paper's) | "adam"
    lr: float = 0.02  # Adam only; L-BFGS uses lr 1
    init: str = "content"  # "content" | "noise" | "style"
    seed: int = 0
    tv_weight: float = 0.0
    colour: str = "none"  # "none" | "luminance" | "histogram" (see convsight.style.colour)
    style_blend: tuple[float, ...] | None = None  # one weight per style image; None = equal
    levels: int = 1  # coarse-to-fine: sizes size / 2^(levels-1) ... size
    max_size: int = 0  # 0 = from available memory (see max_side_for_memory)
    frames_every: int = 0  # keep a snapshot every N evaluations (0 = none)
    encoder: str = DEFAULT_ENCODER
    weights: str = "imagenet"  # "imagenet" | "random" | a weights file
    pooling: str = "avg"
    input_norm: str = "auto"  # "auto" | "torchvision" | "caffe" (see convsight.style.encoder)
    style_layers: tuple[tuple[str, float], ...] | None = None  # (tap, weight); None = encoder's, equal
    content_layer: str | None = None
    loss_normalization: str = "relative"  # "relative" | "paper" (see convsight.style.losses)
    precision: str = "fp32"  # "fp32" | "bf16" (autocast for the encoder forward) | "auto" (bf16 if native)
    line_search: str = "strong_wolfe"  # L-BFGS: "strong_wolfe" | "none" (fixed step lr=1, one evaluation per step)
    coarse_steps: int = 0  # evaluations at each coarser level when levels > 1 (0 = steps)
    target_loss: float = 0.0  # stop at the first evaluation of the last level with loss <= this (0 = never)
    bounds: str = "clip"  # "clip": pixels move freely, the result is clipped | "loss": the loss sees them clipped
    first_step: float = 0.0  # L-BFGS: the first step's largest pixel change (0 = torch's: a step of L1 norm 1)

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha={self.alpha}: must be in [0, 1]")
        if not 16 <= self.size <= 8192:
            raise ConfigError(f"size={self.size}: expected 16..8192 pixels")
        if self.steps < 1:
            raise ConfigError(f"steps={self.steps}: must be >= 1")
        checks = (("optimizer", ("lbfgs", "adam")), ("init", ("content", "noise", "style")),
                  ("colour", colour.MODES), ("precision", PRECISIONS), ("line_search", ("strong_wolfe", "none")),
                  ("bounds", ("clip", "loss")))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if not 1 <= self.levels <= 5:
            raise ConfigError(f"levels={self.levels}: expected 1..5")
        if self.size >> (self.levels - 1) < 16:
            raise ConfigError(f"levels={self.levels}: the coarsest level would be under 16 px at size {self.size}")
        if self.lr <= 0 or min(self.tv_weight, self.frames_every, self.max_size, self.coarse_steps,
                               self.target_loss, self.first_step) < 0:
            raise ConfigError("lr must be > 0; tv_weight, frames_every, max_size, coarse_steps, target_loss and "
                              "first_step must be >= 0")
        encoder_spec(self.encoder)  # an unknown encoder name is refused here, listing the choices

    def loss_config(self, encoder: str | None = None) -> StyleLossConfig:
        """The loss's taps and weights for ``encoder`` (default: ``self.encoder``).

        ``style_layers`` / ``content_layer`` when set, else the encoder's own taps (the paper's
        relu1_1..relu5_1 and relu4_2 for VGG19), style layers weighted equally.
        """
        spec = encoder_spec(encoder or self.encoder)
        weights = dict(self.style_layers) if self.style_layers else dict.fromkeys(spec.style_taps, 1.0)
        return StyleLossConfig(weights, self.content_layer or spec.content_tap, self.alpha, self.tv_weight,
                               self.loss_normalization)


@dataclass
class GatysResult:
    """image (3, H, W) in [0, 1]; history: loss terms per evaluation; frames: (evaluation, image);
    sizes and evals_per_level: (H, W) and the evaluations spent at each level, coarsest first."""

    image: Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    frames: list[tuple[int, Tensor]] = field(default_factory=list)
    time_s: float = 0.0
    encoder: str = ""
    sizes: list[tuple[int, int]] = field(default_factory=list)
    evals_per_level: list[int] = field(default_factory=list)


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def max_side_for_memory(encoder: StyleEncoder, fraction: float = 0.5, memory: int | None = None) -> int:
    """The largest square side whose optimisation should fit in ``fraction`` of available memory.

    Activations per input pixel are measured with one 32x32 forward; a backward keeps them all and
    adds gradients and temporaries of about the same size, hence x3 (float32).
    """
    count = 0

    def hook(_m: object, _i: object, out: Tensor) -> None:
        nonlocal count
        count += out.numel()

    handles = [m.register_forward_hook(hook) for m in encoder.features]
    try:
        with torch.no_grad():
            encoder(torch.zeros(1, 3, 32, 32))
    finally:
        for h in handles:
            h.remove()
    bytes_per_px = 3 * 4 * count / (32 * 32)
    budget = fraction * (memory if memory is not None else _available_memory())
    return max(16, int(math.sqrt(budget / bytes_per_px)))


class GatysStylizer(Stylizer):
    """The style image(s) bound at construction; :meth:`stylize` / :meth:`run` optimise the pixels.

    styles: one (3, H, W) image in [0, 1] or several (blended by ``config.style_blend``). encoder:
    reuse a built :class:`StyleEncoder` that returns the loss's taps (else one is built from the
    config with exactly the taps of ``config.loss_config()``). A :class:`ConvsightWarning` names
    the encoder when it is not VGG19 with ImageNet weights.
    """

    name = "gatys"

    def __init__(self, styles: Tensor | Sequence[Tensor], config: GatysConfig | None = None,
                 encoder: StyleEncoder | None = None, callback: StepCallback | None = None) -> None:
        self.config = config = config or GatysConfig()
        self.styles = [styles] if isinstance(styles, Tensor) else list(styles)
        if not self.styles or any(s.dim() != 3 or s.shape[0] != 3 for s in self.styles):
            raise ConfigError("style images must be (3, H, W) tensors in [0, 1]")
        if config.style_blend is not None and len(config.style_blend) != len(self.styles):
            raise ConfigError(f"{len(config.style_blend)} blend weights for {len(self.styles)} style images")
        self.callback = callback
        # The loss layers, once, before any encoder is built: they are the taps the encoder returns.
        self.loss_config = config.loss_config(encoder.name if encoder is not None else config.encoder)
        if encoder is None:
            encoder = build_encoder(config.encoder, config.weights, config.pooling, self.loss_config.taps,
                                    config.input_norm)
        self.encoder = encoder
        _check_taps(encoder, self.loss_config)
        if not encoder.is_reference:
            warnings.warn(f"style transfer runs on {encoder.describe()}, not VGG19 with ImageNet weights "
                          "(the paper's encoder); pictures differ from the paper's", ConvsightWarning, stacklevel=2)

    def stylize(self, content: Tensor) -> Tensor:
        return self.run(content).image

    def run(self, content: Tensor) -> GatysResult:
        """content (3, H, W) in [0, 1] -> :class:`GatysResult` (image long side = config.size)."""
        cfg = self.config
        if content.dim() != 3 or content.shape[0] != 3:
            raise ConfigError(f"content must be a (3, H, W) image, got shape {tuple(content.shape)}")
        size = cfg.size
        limit = cfg.max_size or max_side_for_memory(self.encoder)
        if size > limit:
            warnings.warn(f"size {size} px would not fit in memory; using {limit} px (set max_size to override)",
                          ConvsightWarning, stacklevel=2)
            size = limit
        sizes = [max(16, size >> (cfg.levels - 1 - i)) for i in range(cfg.levels)]
        result = GatysResult(image=content, encoder=self.encoder.describe())
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed)
        x: Tensor | None = None
        for level, s in enumerate(sizes):
            c = resize_long(content.float(), s)
            styles = [resize_long(st.float(), s) for st in self.styles]
            if cfg.colour == "luminance":
                styles = [colour.match_luminance(st, c) for st in styles]
                c_in = colour.luminance(c)
            else:
                if cfg.colour == "histogram":
                    styles = [colour.match_colour(st, c) for st in styles]
                c_in = c
            if x is None:
                x = self._init(c_in, styles[0], gen)
            else:  # coarse-to-fine: the previous level's result, upsampled
                x = F.interpolate(x[None], size=c_in.shape[-2:], mode="bilinear", align_corners=False)[0]
            last = level == len(sizes) - 1
            x = self._optimise(x, c_in, styles, result, offset=len(result.history),
                               steps=cfg.steps if last else cfg.coarse_steps or cfg.steps, last=last)
            if cfg.colour == "luminance":
                x_out = colour.combine_luminance(x, c)
            else:
                x_out = x
            result.sizes.append(tuple(x.shape[-2:]))  # type: ignore[arg-type]
            result.evals_per_level.append(len(result.history) - sum(result.evals_per_level))
        result.image = x_out.clamp(0, 1)
        result.time_s = time.perf_counter() - t0
        return result

    def _init(self, content: Tensor, style: Tensor, gen: Tensor | torch.Generator) -> Tensor:
        if self.config.init == "content":
            return content.clone()
        if self.config.init == "style":
            return F.interpolate(style[None], size=content.shape[-2:], mode="bilinear", align_corners=False)[0]
        return torch.rand(content.shape, generator=gen)  # type: ignore[arg-type]

    def _optimise(self, x0: Tensor, content: Tensor, styles: list[Tensor], result: GatysResult,
                  offset: int, steps: int, last: bool) -> Tensor:
        """One level: ``steps`` loss evaluations from ``x0`` (3, H, W); ``last``: the final level, where
        ``config.target_loss`` may stop it early."""
        cfg = self.config
        bf16 = resolve_precision(cfg.precision, "cpu") == "bf16"  # once per process; warns if emulated
        enc = self.encoder.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss_fn = StyleContentLoss(enc, self.loss_config, content, styles, cfg.style_blend)
        x = x0.detach().clone()[None].contiguous().requires_grad_(True)  # L-BFGS views grads flat
        total = cfg.steps + (cfg.levels - 1) * (cfg.coarse_steps or cfg.steps)
        target = cfg.target_loss if last else 0.0  # a coarser level's loss is not the output's
        evals = 0

        def closure() -> Tensor:
            nonlocal evals
            x.grad = None  # the optimiser's zero_grad(set_to_none=True), for its one parameter
            # bounds="loss": the loss (and its gradient) sees the pixels as they will be written, so
            # the optimiser never lowers it with values that clipping then takes away
            seen = x.clamp(0, 1) if cfg.bounds == "loss" else x
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                terms = loss_fn(seen.contiguous(memory_format=torch.channels_last))
            loss = terms.total.sum()
            loss.backward()
            evals += 1
            values = terms.as_floats()
            result.history.append(values)
            step = offset + evals
            if cfg.frames_every and step % cfg.frames_every == 0:
                result.frames.append((step, x.detach()[0].clamp(0, 1).contiguous().clone()))
            if self.callback is not None:
                self.callback(step, total, values)
            if target and values["total"] <= target:
                raise _TargetReached  # x holds the point just evaluated (L-BFGS restores it only after)
            return loss

        try:
            _minimise(x, closure, steps, cfg, lambda: evals, result)
        except _TargetReached:
            pass
        return x.detach()[0].contiguous().clamp(0, 1)

    def with_config(self, **changes: object) -> GatysStylizer:
        """A stylizer for the same styles and encoder with some options changed (e.g. alpha).

        Options of the encoder itself (``encoder``, ``weights``, ``pooling``, ``input_norm``) keep the
        built encoder's; the loss layers must be among its taps.
        """
        new = GatysStylizer.__new__(GatysStylizer)
        new.__dict__.update(self.__dict__)
        new.config = replace(self.config, **changes)  # type: ignore[arg-type]
        new.loss_config = new.config.loss_config(self.encoder.name)
        _check_taps(self.encoder, new.loss_config)
        return new


class _TargetReached(Exception):
    """Raised by the closure at the first evaluation with loss <= config.target_loss."""


def _minimise(x: Tensor, closure: Callable[[], Tensor], steps: int, cfg: GatysConfig,
              evals: Callable[[], int], result: GatysResult) -> None:
    """Run ``cfg.optimizer`` on ``x`` for a budget of ``steps`` calls of ``closure``."""
    if cfg.optimizer == "lbfgs":
        # One call with a budget of `steps` evaluations (the last line search may finish a few past
        # it); tolerances 0 so it never stops early on a plateau. With the strong-Wolfe line search
        # the loss falls at every step, so the last image is the best; "none" is the tutorial's fixed
        # step (lr 1), one evaluation per step: per evaluation it keeps pace at 256 px but can go up
        # (the tutorial's final image is worse than its best), and on small losses it crawls (tests).
        search = "strong_wolfe" if cfg.line_search == "strong_wolfe" else None
        own = 1 if cfg.first_step > 0 and steps > 1 else 0  # evaluations _first_step spends itself
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=steps - own, max_eval=steps - own, tolerance_grad=0.0,
                                tolerance_change=0.0, history_size=50, line_search_fn=search)
        if own:
            _first_step(opt, x, closure, cfg.first_step)
        opt.step(closure)  # type: ignore[arg-type]
        while evals() < steps:  # L-BFGS stops early only on an exactly zero gradient
            opt.step(closure)  # type: ignore[arg-type]
            if result.history[-1]["total"] == 0.0:
                break
        return
    adam = torch.optim.Adam([x], lr=cfg.lr)
    for _ in range(steps):
        adam.step(closure)  # type: ignore[arg-type]
        with torch.no_grad():
            x.clamp_(0, 1)  # Adam's steps are small: keeping pixels valid costs nothing


def _first_step(opt: torch.optim.LBFGS, x: Tensor, closure: Callable[[], Tensor], size: float) -> None:
    """Take L-BFGS's first step ourselves: along -gradient, the largest pixel change ``size``.

    torch's first step has L1 norm 1 (``t = 1 / |g|_1``): for 10^5 pixels, millionths of a grey level,
    which the strong-Wolfe search then grows tenfold per evaluation (measured at 256 px: the first
    iteration took 6 evaluations). A step of a few grey levels is in the right range; the step and
    the gradient before it are handed to L-BFGS as its first iteration, so its next step is already
    scaled by the curvature they measure and no evaluation is spent twice.
    """
    loss = closure()
    g = x.grad.detach().reshape(-1).clone()  # the flat gradient L-BFGS gathers, for its one parameter
    d = g.neg().mul_(size / float(g.abs().max().clamp_min(1e-30)))
    with torch.no_grad():
        x.add_(d.view_as(x))
    # L-BFGS's own record of a finished first iteration: step() then starts at iteration 2, from x + d
    opt.state[x].update(func_evals=1, n_iter=1, d=d, t=1.0, old_dirs=[], old_stps=[], ro=[], H_diag=1,
                        prev_flat_grad=g, prev_loss=float(loss.detach()))


def _check_taps(encoder: StyleEncoder, loss: StyleLossConfig) -> None:
    missing = [t for t in loss.taps if t not in encoder.taps]
    if missing:
        raise ConfigError(f"the encoder does not return tap(s) {missing}; build it with those taps")
