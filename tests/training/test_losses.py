"""Label smoothing against its definition, and the classification step."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsight.errors import ConfigError
from convsight.training.losses import classification_loss, classification_step


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_references(eps: float) -> None:
    logits = torch.randn(6, 5, dtype=torch.float64)
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    got = classification_loss(logits, targets, eps)
    # by hand: (1 - e) * NLL of the true class + e * mean over classes of -log p
    logp = logits.log_softmax(-1)
    by_hand = ((1 - eps) * -logp[torch.arange(6), targets] + eps * -logp.mean(-1)).mean()
    # torch's soft-target path, a different code path from label_smoothing=
    soft = (1 - eps) * F.one_hot(targets, 5).double() + eps / 5
    assert got.item() == pytest.approx(by_hand.item(), rel=1e-12)
    assert got.item() == pytest.approx(F.cross_entropy(logits, soft).item(), rel=1e-12)


def test_smoothing_penalises_overconfidence() -> None:
    targets = torch.tensor([0])
    confident = torch.tensor([[20.0, 0.0, 0.0]])
    calibrated = torch.tensor([[3.0, 0.0, 0.0]])
    assert classification_loss(confident, targets, 0.0) < classification_loss(calibrated, targets, 0.0)
    assert classification_loss(confident, targets, 0.2) > classification_loss(calibrated, targets, 0.2)


def test_invalid_smoothing() -> None:
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        classification_loss(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), -0.1)


@dataclass
class _Out:
    logits: Tensor


def test_classification_step_accepts_tensor_or_logits_attribute() -> None:
    net = nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    expected = F.cross_entropy(net(x), y, label_smoothing=0.1)
    assert torch.allclose(classification_step(0.1)(net, (x, y))["cls"], expected)

    class Wrapped(nn.Module):
        def forward(self, inputs: Tensor) -> _Out:
            return _Out(net(inputs))

    assert torch.allclose(classification_step(0.1)(Wrapped(), (x, y))["cls"], expected)
