"""Gram matrices: the style representation of Gatys et al. (2016).

For a layer with ``N = C`` feature maps of ``M = h * w`` positions, ``F`` is the ``(N, M)`` matrix of
activations. The paper's Gram matrix is ``F F^T`` (unnormalised); here it is divided by the layer
size ``N * M``::

    G[i, j] = sum_k F[i, k] F[j, k] / (C * h * w)

so Gram entries of different layers and image sizes are on comparable scales. The paper's style
error ``E_l = 1 / (4 N^2 M^2) * sum (F F^T - A)^2`` is then exactly ``1/4 * sum (G - A)^2`` with our
normalised ``G`` and ``A`` (see :mod:`convsight.style.losses`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """features (B, C, h, w) -> Gram matrices (B, C, C), float32, divided by C * h * w.

    Computed in float32 even when the features come out of a bfloat16 autocast region: the sum over
    ``h * w`` positions would lose most of its digits in bfloat16.
    """
    if features.dim() != 4:
        raise ValueError(f"gram_matrix expects (B, C, h, w) features, got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)  # (B, C, M)
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)  # (B, C, C)
