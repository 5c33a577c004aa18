"""The tutorial-style reference that benchmarks/style.py measures ours against (no benchmark of its own).

It follows PyTorch's "Neural Transfer" tutorial (pytorch.org/tutorials/advanced/neural_style_tutorial.html):
the encoder is deep-copied into a new ``nn.Sequential`` with a loss module inserted after each tap
(targets computed by re-running the partial model on the style / content image at each insertion),
trimmed after the last loss module, float32, L-BFGS with its defaults (lr 1, no line search, 20
iterations per ``step`` call, called until the budget is spent) and the pixels clamped to [0, 1] in the
closure. The same taps, weights and normalisation as ours, so both minimise the same loss.
"""

from __future__ import annotations

import copy
import time
import warnings

import torch
from torch import Tensor, nn

ALPHA = 0.1
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_TAP = "relu4_2"


def encoder(taps=(*STYLE_TAPS, CONTENT_TAP)):  # noqa: ANN001, ANN201
    from convsight.style.encoder import build_encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_encoder("vgg19", "imagenet", "avg", taps)


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


class _Normalization(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean.clone(), std.clone()

    def forward(self, img: Tensor) -> Tensor:
        return (img - self.mean) / self.std


def build_reference(content: Tensor, style: Tensor) -> tuple[nn.Sequential, list[StyleLoss], list[ContentLoss]]:
    """The tutorial's model: the whole VGG19 copied, loss modules inserted after the taps, trimmed."""
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
    return model, style_losses, content_losses


def reference_loss(model: nn.Sequential, style_losses: list[StyleLoss], content_losses: list[ContentLoss],
                   x: Tensor) -> Tensor:
    """One forward of the tutorial's model -> its loss (a scalar)."""
    model(x)
    style_score = sum(sl.loss for sl in style_losses)
    content_score = sum(cl.loss for cl in content_losses)
    return (1 - ALPHA) * style_score + ALPHA * content_score


def run_reference(content: Tensor, style: Tensor, steps: int, clock: list[tuple[float, float]],
                  losses: list[float]) -> Tensor:
    """The tutorial's loop; ``clock`` / ``losses`` get each evaluation's (wall, CPU) time and (clamped, fp32) loss."""
    model, style_losses, content_losses = build_reference(content, style)
    x = content[None].clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([x])
    while len(clock) <= steps:

        def closure() -> Tensor:
            with torch.no_grad():
                x.clamp_(0, 1)
            optimizer.zero_grad()
            loss = reference_loss(model, style_losses, content_losses, x)
            loss.backward()
            clock.append((time.perf_counter(), time.process_time()))
            losses.append(float(loss.detach()))
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        x.clamp_(0, 1)
    return x.detach()[0]
