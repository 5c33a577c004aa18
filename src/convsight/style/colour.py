"""Colour preservation for style transfer (Gatys, Bethge, Hertzmann & Shechtman, 2016,
"Preserving Color in Neural Artistic Style Transfer").

Two ways to keep the content image's colours while taking the style's texture:

* ``"luminance"``: transfer on luminance only. Content and style go to YUV (BT.601); the style's Y
  is moment-matched to the content's Y (same mean and standard deviation); the transfer runs on
  the two grey images; the result's Y is recombined with the content's U and V.
* ``"histogram"``: colour statistics matching. The style image's RGB pixels are linearly
  transformed so their mean and covariance equal the content's (the "Image Analogies" transform,
  with the symmetric matrix square root); the transfer then runs on that recoloured style.

:func:`match_colour` run the other way round (content recoloured to the style's statistics) is a
cheap way to carry a style's palette with an encoder that transfers colours weakly.
All functions take and return float tensors ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

# BT.601 analog YUV: Y in [0, 1], U in [-0.436, 0.436], V in [-0.615, 0.615]
_RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
_YUV_TO_RGB = torch.linalg.inv(_RGB_TO_YUV)
MODES = ("none", "luminance", "histogram")


def _apply(m: Tensor, x: Tensor) -> Tensor:
    """3x3 matrix ``m`` applied to the channel axis of (3, H, W) or (B, 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", m.to(x), x)


def rgb_to_yuv(x: Tensor) -> Tensor:
    return _apply(_RGB_TO_YUV, x)


def yuv_to_rgb(x: Tensor) -> Tensor:
    return _apply(_YUV_TO_RGB, x)


def luminance(x: Tensor) -> Tensor:
    """RGB -> its Y channel replicated to 3 channels (a grey RGB image), same shape."""
    y = rgb_to_yuv(x)[..., :1, :, :]
    return y.expand_as(x).clone()


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """Grey version of ``style`` whose luminance has the content's mean and std (3 equal channels)."""
    ys, yc = rgb_to_yuv(style)[..., :1, :, :], rgb_to_yuv(content)[..., :1, :, :]
    y = (ys - ys.mean()) / (ys.std() + 1e-6) * yc.std() + yc.mean()
    return y.clamp(0, 1).expand_as(style).clone()


def combine_luminance(stylised: Tensor, content: Tensor) -> Tensor:
    """The stylised image's Y with the content's U, V (sizes must match) -> RGB in [0, 1]."""
    y = rgb_to_yuv(stylised)[..., :1, :, :]
    uv = rgb_to_yuv(content)[..., 1:, :, :]
    return yuv_to_rgb(torch.cat([y, uv], dim=-3)).clamp(0, 1)


def _sqrtm(c: Tensor, inverse: bool = False) -> Tensor:
    vals, vecs = torch.linalg.eigh(c)
    vals = vals.clamp_min(1e-8)
    return vecs @ torch.diag(vals.rsqrt() if inverse else vals.sqrt()) @ vecs.T


def match_colour(source: Tensor, target: Tensor) -> Tensor:
    """``source`` recoloured so its RGB mean and covariance equal ``target``'s (sizes may differ).

    x' = C_t^{1/2} C_s^{-1/2} (x - mu_s) + mu_t; clamped to [0, 1].
    """
    s = source.double().reshape(3, -1) if source.dim() == 3 else source.double().transpose(0, 1).reshape(3, -1)
    t = target.double().reshape(3, -1) if target.dim() == 3 else target.double().transpose(0, 1).reshape(3, -1)
    mu_s, mu_t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    eye = 1e-5 * torch.eye(3, dtype=torch.float64)
    cs, ct = torch.cov(s) + eye, torch.cov(t) + eye
    m = _sqrtm(ct) @ _sqrtm(cs, inverse=True)  # (3, 3)
    out = m @ (s - mu_s) + mu_t  # (3, N)
    if source.dim() == 3:
        out = out.reshape(source.shape)
    else:
        out = out.reshape(3, source.shape[0], *source.shape[2:]).transpose(0, 1)
    return out.clamp(0, 1).to(source.dtype)


def histogram_match(source: Tensor, target: Tensor) -> Tensor:
    """Per-channel exact histogram matching of ``source`` (3, H, W) to ``target`` (3, H', W')."""
    out = torch.empty_like(source)
    for c in range(3):
        s = source[c].flatten()
        t_sorted = torch.sort(target[c].flatten()).values
        ranks = torch.argsort(torch.argsort(s))  # rank of each source pixel
        idx = (ranks.double() * (t_sorted.numel() - 1) / max(s.numel() - 1, 1)).round().long()
        out[c] = t_sorted[idx].reshape(source.shape[1:])
    return out
