from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import pytest
import torch

from convsight.errors import ConfigError
from convsight.training.batches import batch_size, check_losses, default_step, move_to

Pair = namedtuple("Pair", "a b")


@dataclass(frozen=True)
class Box:
    t: torch.Tensor
    name: str


def test_move_to_walks_containers():
    obj = {"x": [torch.zeros(1), (torch.ones(1), "s")], "p": Pair(torch.zeros(2), 3), "d": Box(torch.ones(2), "n")}
    out = move_to(obj, "meta")
    assert out["x"][0].device.type == "meta" and out["x"][1][0].device.type == "meta" and out["x"][1][1] == "s"
    assert isinstance(out["p"], Pair) and out["p"].a.device.type == "meta" and out["p"].b == 3
    assert isinstance(out["d"], Box) and out["d"].t.device.type == "meta" and out["d"].name == "n"


def test_batch_size():
    assert batch_size((torch.zeros(5, 3), None)) == 5
    assert batch_size(([1, 2, 3], None)) == 3
    assert batch_size(torch.zeros(4, 2)) == 4


def test_default_step_needs_pairs_and_losses():
    with pytest.raises(ConfigError, match="pass step_fn"):
        default_step(torch.nn.Identity(), torch.zeros(2))

    class NoLoss(torch.nn.Module):
        def forward(self, x, y):
            return x

    with pytest.raises(ConfigError, match="no .losses"):
        default_step(NoLoss(), (torch.zeros(1), None))


def test_check_losses():
    check_losses({"a": torch.tensor(1.0)})
    with pytest.raises(ConfigError, match="no loss terms"):
        check_losses({})
    with pytest.raises(ConfigError, match="scalar"):
        check_losses({"a": torch.zeros(3)})
