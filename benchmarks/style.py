"""Gatys style transfer: ours vs a straightforward tutorial-style reference, side by side in one run.

    .venv/bin/python benchmarks/style.py [--size 256] [--steps 300] [--threads 2] [--precision bf16]

Both optimise the same image (content chelsea, style the generated ``swirl``, resized to --size) for
the same loss: the same encoder (VGG19, random init seed 0 unless VGG19 ImageNet weights are in the
local torch cache; average pooling), the same taps (style relu1_1..relu5_1 equal weights, content
relu4_2), alpha 0.1, relative normalisation (:mod:`convsight.style.losses`), started from the content
image, L-BFGS with a budget of --steps loss evaluations.

The reference follows PyTorch's "Neural Transfer" tutorial: the encoder is deep-copied into a new
``nn.Sequential`` with a loss module inserted after each tap (targets computed by re-running the
partial model on the style / content image at each insertion), trimmed after the last loss module,
float32, L-BFGS with its defaults (lr 1, no line search, 20 iterations per ``step`` call, called
until --steps evaluations) and the pixels clamped to [0, 1] in the closure.

Ours: :class:`convsight.style.gatys.GatysStylizer` (truncated encoder, no copies, targets once under
no_grad, channels-last, --precision autocast, strong-Wolfe L-BFGS in one call).

Each runs in its own subprocess with the same thread count; peak memory = that process's ru_maxrss
(everything: Python, torch, weights, activations). The final loss of both images is recomputed in
float32 by the same loss function in the parent.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

ALPHA = 0.1
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_TAP = "relu4_2"


def inputs(size: int) -> tuple[Tensor, Tensor]:
    from convsight.io.images import resize_long
    from convsight.style.offline import load_style_input

    content = resize_long(load_style_input("chelsea"), size)
    style = torch.nn.functional.interpolate(load_style_input("swirl")[None], size=content.shape[-2:], mode="bilinear",
                                            antialias=True, align_corners=False)[0].clamp(0, 1)
    return content, style  # the same size: the tutorial's pattern needs it


def encoder(taps=(*STYLE_TAPS, CONTENT_TAP)):  # noqa: ANN001, ANN201
    from convsight.style.encoder import build_encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_encoder("vgg19", "imagenet", "avg", taps)


def loss_fn(enc, content: Tensor, style: Tensor):  # noqa: ANN001, ANN201
    from convsight.style.losses import StyleContentLoss, StyleLossConfig

    return StyleContentLoss(enc, StyleLossConfig.equal(STYLE_TAPS, CONTENT_TAP, alpha=ALPHA), content, [style])


# --------------------------------------------------------------------------------- reference
class ContentLoss(nn.Module):
    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.target = target.detach()

    def forward(self, x: Tensor) -> Tensor:
        self.loss = (x - self.target).pow(2).sum() / self.target.pow(2).sum()
        return x


class StyleLoss(nn.Module):
    def __init__(self, target_feature: Tensor, weight: float) -> None:
        super().__init__()
        self.target, self.weight = self._gram(target_feature).detach(), weight

    @staticmethod
    def _gram(x: Tensor) -> Tensor:
        a, b, c, d = x.size()
        f = x.view(a * b, c * d)
        return torch.mm(f, f.t()).div(a * b * c * d)

    def forward(self, x: Tensor) -> Tensor:
        self.loss = self.weight * (self._gram(x) - self.target).pow(2).sum() / self.target.pow(2).sum()
        return x


def run_reference(content: Tensor, style: Tensor, steps: int) -> tuple[Tensor, int]:
    enc = encoder(taps=("relu5_4",))  # the whole convolutional part, as the tutorial loads it
    cnn = copy.deepcopy(enc.features)
    names = enc.spec.layer_names
    model = nn.Sequential()
    model.add_module("normalization", _Normalization(enc.mean, enc.std))
    content_losses, style_losses = [], []
    for i, layer in enumerate(cnn.children()):
        model.add_module(names[i], layer)
        if names[i] == CONTENT_TAP:
            cl = ContentLoss(model(content[None]).detach())
            model.add_module(f"content_loss_{i}", cl)
            content_losses.append(cl)
        if names[i] in STYLE_TAPS:
            sl = StyleLoss(model(style[None]).detach(), 1 / len(STYLE_TAPS))
            model.add_module(f"style_loss_{i}", sl)
            style_losses.append(sl)
    last = max(i for i, m in enumerate(model) if isinstance(m, (ContentLoss, StyleLoss)))
    model = model[: last + 1]
    model.eval().requires_grad_(False)
    x = content[None].clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x])
    run = [0]
    while run[0] <= steps:

        def closure() -> Tensor:
            with torch.no_grad():
                x.clamp_(0, 1)
            optimizer.zero_grad()
            model(x)
            style_score = sum(sl.loss for sl in style_losses)
            content_score = sum(cl.loss for cl in content_losses)
            loss = (1 - ALPHA) * style_score + ALPHA * content_score
            loss.backward()
            run[0] += 1
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        x.clamp_(0, 1)
    return x.detach()[0], run[0]


class _Normalization(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean.clone(), std.clone()

    def forward(self, img: Tensor) -> Tensor:
        return (img - self.mean) / self.std


# --------------------------------------------------------------------------------------- ours
def run_ours(content: Tensor, style: Tensor, steps: int, precision: str) -> tuple[Tensor, int]:
    from convsight.style.gatys import GatysConfig, GatysStylizer

    cfg = GatysConfig(alpha=ALPHA, size=max(content.shape[-2:]), steps=steps, encoder="vgg19", weights="imagenet",
                      style_layers=tuple((t, 1.0) for t in STYLE_TAPS), content_layer=CONTENT_TAP,
                      precision=precision, max_size=8192)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = GatysStylizer(style, cfg, encoder=encoder()).run(content)
    return r.image, len(r.history)


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    content, style = inputs(args.size)
    t0 = time.perf_counter()
    if args.worker == "ours":
        image, evals = run_ours(content, style, args.steps, args.precision)
    else:
        image, evals = run_reference(content, style, args.steps)
    seconds = time.perf_counter() - t0
    torch.save(image.contiguous(), args.image)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"time_s": seconds, "evals": evals, "peak_rss_mb": rss_mb}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--save", type=Path, default=None, help="Write both results side by side to this image.")
    ap.add_argument("--worker", choices=("ours", "reference"), help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    results, images = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("reference", "ours"):
            path = Path(tmp) / f"{name}.pt"
            cmd = [sys.executable, __file__, "--worker", name, "--image", str(path), "--size", str(args.size),
                   "--steps", str(args.steps), "--threads", str(args.threads), "--precision", args.precision]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            images[name] = torch.load(path, weights_only=True)
    torch.set_num_threads(args.threads)
    content, style = inputs(args.size)
    enc = encoder()
    loss = loss_fn(enc, content, style)
    with torch.no_grad():
        for name in results:
            results[name]["loss"] = float(loss(images[name][None]).total)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.size}px (long side), budget {args.steps} "
          f"evaluations, encoder {enc.describe()}, ours in {args.precision}")
    print(f"{'':10s} {'time s':>8s} {'evals':>6s} {'ms/eval':>8s} {'peak RSS MB':>12s} {'final loss (fp32)':>18s}")
    for name, r in results.items():
        print(f"{name:10s} {r['time_s']:8.1f} {r['evals']:6d} {1000 * r['time_s'] / r['evals']:8.0f} "
              f"{r['peak_rss_mb']:12.0f} {r['loss']:18.5f}")
    o, ref = results["ours"], results["reference"]
    print(f"\nours / reference: time {o['time_s'] / ref['time_s']:.2f}x (target <= 0.5x), peak memory "
          f"{o['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x (target < 1), final loss {o['loss'] / ref['loss']:.2f}x "
          f"(target <= 1)")
    if args.save:
        from convsight.io.images import save_image

        save_image(torch.cat([content, images["reference"], images["ours"]], dim=2), args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
