"""The loss of Gatys et al., as in the lecture: J(G) = (1 - alpha) * Jstyle(S, G) + alpha * Jcontent(C, G).

Terms, for a generated image ``x``, style image ``s`` and content image ``c`` through an encoder:

* ``Jstyle = sum_l w_l * E_l`` over the style taps, with ``E_l`` the squared Frobenius distance of the
  Gram matrices :func:`~convsight.style.gram.gram_matrix` (normalised by layer size ``C * h * w``);
* ``Jcontent`` the squared distance of the content tap's activations;
* optional total variation ``tv_weight * TV(x)`` (added on top; ``TV`` = mean squared difference of
  vertically and horizontally neighbouring pixels).

Two normalisations (``StyleLossConfig.normalization``):

``"relative"`` (default). Each term is divided by its target's energy:
``E_l = ||G_l(x) - A_l||^2 / ||A_l||^2`` and ``Jcontent = ||F(x) - P||^2 / ||P||^2`` (``A_l`` the
style Gram, ``P`` the content features), layer weights summing to 1. Both terms start near 1 for
typical inits whatever the encoder, tap or image size, so alpha means the same everywhere
(alpha = 0.5: equal say). In the paper's terms (``L = a L_content + b sum_l w_l E_l^paper``, with
``L_content = 1/2 ||F - P||^2`` and ``E_l^paper = 1/4 ||G_l - A_l||^2`` in our normalised Grams), this
is ``a / b = alpha / (1 - alpha) * ||A_l||^2 / (2 ||P||^2)`` for each layer ``l``: the ratio depends
on the images; :func:`paper_ratio` evaluates it.

``"paper"``. The paper's own terms: ``Jcontent = 1/2 ||F(x) - P||^2`` (a sum, not a mean) and
``E_l = 1/(4 N_l^2 M_l^2) ||F F^T - A||^2 = 1/4 ||G_l - A_l||^2``. Then ``alpha / (1 - alpha) = a / b``
exactly, i.e. ``alpha = r / (1 + r)`` for the paper's ratio ``r = a / b`` (1e-3 .. 1e-4 in its
figures): see :func:`alpha_from_paper_ratio`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from convsight.errors import ConfigError
from convsight.style.gram import gram_matrix

_EPS = 1e-12


def alpha_from_paper_ratio(ratio: float) -> float:
    """The paper's content/style weight ratio ``a / b`` -> alpha (exact with ``normalization="paper"``)."""
    if ratio < 0:
        raise ConfigError(f"ratio a/b={ratio}: must be >= 0")
    return ratio / (1.0 + ratio)


def paper_ratio(alpha: float, style_grams: Mapping[str, Tensor], content_features: Tensor) -> dict[str, float]:
    """Per style layer, the paper's ``a / b`` equivalent to ``alpha`` under ``"relative"`` normalisation."""
    if alpha >= 1:
        return {k: float("inf") for k in style_grams}
    p2 = float(content_features.float().pow(2).sum())
    return {k: alpha / (1 - alpha) * float(g.pow(2).sum()) / (2 * p2 + _EPS) for k, g in style_grams.items()}


@dataclass(frozen=True)
class StyleLossConfig:
    """alpha in [0, 1]; style_weights: tap -> weight (normalised to sum 1); content_tap; tv_weight >= 0."""

    style_weights: Mapping[str, float]
    content_tap: str
    alpha: float = 0.1
    tv_weight: float = 0.0
    normalization: str = "relative"
    _norm: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha={self.alpha}: must be in [0, 1] (J = (1 - alpha) Jstyle + alpha Jcontent)")
        if self.tv_weight < 0:
            raise ConfigError(f"tv_weight={self.tv_weight}: must be >= 0")
        if self.normalization not in ("relative", "paper"):
            raise ConfigError(f"normalization={self.normalization!r}: expected 'relative' or 'paper'")
        if not self.style_weights or any(w < 0 for w in self.style_weights.values()):
            raise ConfigError(f"style_weights={dict(self.style_weights)}: need >= 1 tap, weights >= 0")
        total = sum(self.style_weights.values())
        if total <= 0:
            raise ConfigError("style_weights: at least one weight must be > 0")
        object.__setattr__(self, "_norm", {k: float(w) / total for k, w in self.style_weights.items()})

    @classmethod
    def equal(cls, style_taps: Sequence[str], content_tap: str, **kw: object) -> StyleLossConfig:
        """Equal weights over ``style_taps`` (the paper's w_l = 1/5)."""
        return cls(dict.fromkeys(style_taps, 1.0), content_tap, **kw)  # type: ignore[arg-type]

    @property
    def layer_weights(self) -> dict[str, float]:
        """style_weights normalised to sum to 1."""
        return dict(self._norm)

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self._norm, self.content_tap)))


def style_loss(features: Mapping[str, Tensor], targets: Mapping[str, Tensor], weights: Mapping[str, float],
               normalization: str = "relative") -> Tensor:
    """Jstyle = sum_l w_l E_l. features: tap -> (B, C, h, w); targets: tap -> Gram (1 or B, C, C).

    Returns (B,): one value per image in the batch.
    """
    total: Tensor | None = None
    for tap, w in weights.items():
        if w == 0:
            continue
        g, a = gram_matrix(features[tap]), targets[tap].float()  # (B, C, C), (1|B, C, C)
        sq = (g - a).pow(2).sum(dim=(1, 2))  # (B,)
        e = sq / (a.pow(2).sum(dim=(1, 2)) + _EPS) if normalization == "relative" else sq / 4
        total = w * e if total is None else total + w * e
    if total is None:
        raise ConfigError("style_loss: no style tap has a positive weight")
    return total


def content_loss(features: Tensor, target: Tensor, normalization: str = "relative") -> Tensor:
    """Jcontent. features (B, C, h, w), target (1 or B, C, h, w) -> (B,)."""
    f, p = features.float(), target.float()
    sq = (f - p).pow(2).flatten(1).sum(1)  # (B,)
    if normalization == "relative":
        return sq / (p.pow(2).flatten(1).sum(1) + _EPS)
    return sq / 2


def total_variation(x: Tensor) -> Tensor:
    """x (B, 3, H, W) -> (B,): mean squared difference of vertical + horizontal neighbours."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).flatten(1).mean(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).flatten(1).mean(1)
    return dy + dx


@dataclass
class LossTerms:
    """total = (1 - alpha) style + alpha content + tv_weight tv; each (B,) (unweighted terms)."""

    total: Tensor
    style: Tensor
    content: Tensor
    tv: Tensor

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach().sum()) for k in ("total", "style", "content", "tv")}


class StyleContentLoss(nn.Module):
    """J for one content image and one (or a weighted blend of several) style images.

    Targets are computed once, under no_grad, at construction: style Grams (a blend
    ``sum_k beta_k G_l(s_k)`` for several styles, beta normalised to sum 1) and content features.
    forward(x (B, 3, H, W) in [0, 1]) -> :class:`LossTerms`.
    """

    def __init__(self, encoder: nn.Module, config: StyleLossConfig, content: Tensor | None,
                 styles: Sequence[Tensor], blend: Sequence[float] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        if not styles:
            raise ConfigError("at least one style image is needed")
        blend = list(blend) if blend is not None else [1.0] * len(styles)
        if len(blend) != len(styles) or any(b < 0 for b in blend) or sum(blend) <= 0:
            raise ConfigError(f"style blend weights {blend}: need one weight >= 0 per style image, sum > 0")
        betas = [b / sum(blend) for b in blend]
        style_taps = [t for t, w in config.layer_weights.items() if w > 0]
        with torch.no_grad():
            grams: dict[str, Tensor] = {}
            for beta, s in zip(betas, styles):
                feats = encoder(s[None] if s.dim() == 3 else s)
                for t in style_taps:
                    g = beta * gram_matrix(feats[t])  # (1, C, C)
                    grams[t] = g if t not in grams else grams[t] + g
            self.style_targets = grams
            self.content_target: Tensor | None = None
            if content is not None and config.alpha > 0:
                self.content_target = encoder(content[None] if content.dim() == 3 else content)[config.content_tap]

    def forward(self, x: Tensor) -> LossTerms:
        cfg = self.config
        feats = self.encoder(x)
        js = style_loss(feats, self.style_targets, cfg.layer_weights, cfg.normalization)
        zero = torch.zeros_like(js)
        # alpha == 0: content is ignored entirely (never computed, so its gradient is exactly zero)
        jc = content_loss(feats[cfg.content_tap], self.content_target, cfg.normalization) \
            if self.content_target is not None else zero
        tv = total_variation(x.float()) if cfg.tv_weight > 0 else zero
        total = (1 - cfg.alpha) * js + cfg.alpha * jc + cfg.tv_weight * tv
        return LossTerms(total, js.detach(), jc.detach(), tv.detach())
