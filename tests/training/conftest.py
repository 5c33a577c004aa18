"""Tiny models and data for the trainer tests: a 2-layer conv net on 8x8 inputs, three classes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset


@dataclass(frozen=True, eq=False)
class TinyOutput:
    logits: Tensor
    losses: dict[str, Tensor]


class TinyNet(nn.Module):
    """conv(1->4) -> BN -> ReLU -> global mean -> dropout -> linear(4->3); two loss terms."""

    def __init__(self, dropout: float = 0.0, bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor, y: Tensor | None = None) -> TinyOutput:
        h = F.relu(self.bn(self.conv(x))).mean((2, 3))  # (B, 4)
        logits = self.fc(self.drop(h))  # (B, 3)
        losses = {} if y is None else {"cls": F.cross_entropy(logits, y), "l2": 1e-2 * logits.pow(2).mean()}
        return TinyOutput(logits, losses)


def make_data(n: int, seed: int) -> TensorDataset:
    """Learnable labels: the class shifts the image's brightness by -0.8, 0 or +0.8."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 8, 8, generator=g) + 0.8 * (y - 1).float()[:, None, None, None]
    return TensorDataset(x, y)


@pytest.fixture
def train_data() -> TensorDataset:
    return make_data(24, seed=1)


@pytest.fixture
def val_data() -> TensorDataset:
    return make_data(10, seed=2)  # 10 with batch 4: an uneven last batch


@pytest.fixture
def tiny_net() -> Callable[..., TinyNet]:
    def make(dropout: float = 0.0, bn: bool = True, seed: int = 0) -> TinyNet:
        torch.manual_seed(seed)
        return TinyNet(dropout, bn)

    return make
