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

    Precision follows the features: float32 features give a float32 product; bfloat16 features (out
    of a bfloat16 autocast region) are multiplied in bfloat16, where the CPU/GPU kernels accumulate
    the sum over ``h * w`` positions in float32 and only round the (C, C) result (relative error
    <= 0.4%, far below the Gram differences the optimisation leaves; measured in tests), at about
    half the cost. The product reads the features in their own memory layout (no copy for
    channels-last maps, the layout the encoder runs in).
    """
    if features.dim() != 4:
        raise ValueError(f"gram_matrix expects (B, C, h, w) features, got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features if features.dtype == torch.bfloat16 else features.float()
    with torch.autocast(device_type=f.device.type, enabled=False):
        if f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous():
            rows = f.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, M, C), a view
            g = torch.bmm(rows.transpose(1, 2), rows)  # (B, C, C)
        else:
            cols = f.reshape(b, c, h * w)  # (B, C, M)
            g = torch.bmm(cols, cols.transpose(1, 2))  # (B, C, C)
    return g.float() / (c * h * w)
