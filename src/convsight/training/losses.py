"""Loss pieces the trainer offers to every model: classification cross-entropy with label smoothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from convsight.errors import ConfigError


def classification_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of ``logits (B, K)`` against class indices ``targets (B,)`` int64.

    With smoothing ``e`` the target is ``(1 - e) * one_hot + e / K`` (Szegedy et al. 2016), i.e.
    ``(1 - e) * CE + e * mean_k(-log p_k)``: over-confident logits stop paying off.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def classification_step(label_smoothing: float = 0.0) -> Callable[[nn.Module, Any], dict[str, Tensor]]:
    """A trainer ``step_fn`` for plain classifiers: ``model(inputs)`` gives logits ``(B, K)`` (or an
    object with ``.logits``) and the batch is ``(inputs, targets (B,))``; returns ``{"cls": loss}``."""

    def step(model: nn.Module, batch: Any) -> dict[str, Tensor]:
        inputs, targets = batch
        out = model(inputs)
        logits = out if isinstance(out, Tensor) else out.logits
        return {"cls": classification_loss(logits, targets, label_smoothing)}

    return step
