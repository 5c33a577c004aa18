from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from convsight.errors import ConfigError
from convsight.structures import Target
from convsight.training.batches import (
    MultiScaleStep,
    batch_size,
    check_losses,
    default_step,
    move_to,
    rescale_batch,
)

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


# ---- multi-scale training -------------------------------------------------------------------------


class _SizeProbe(torch.nn.Module):
    """Records the size and targets of each batch it is given; a one-term loss."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.seen: list[tuple[tuple[int, int], list[Target]]] = []

    def forward(self, images, targets):  # type: ignore[no-untyped-def]
        self.seen.append((tuple(images.shape[-2:]), targets))
        return SimpleNamespace(losses={"x": self.w * images.mean()})


def _batch() -> tuple[torch.Tensor, list[Target]]:
    images = torch.rand(2, 3, 64, 64)
    return images, [Target(torch.tensor([[8.0, 16.0, 40.0, 48.0]]), torch.tensor([1]), 0),
                    Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 1)]


def test_rescale_batch_scales_boxes_with_the_pixels():
    images, targets = _batch()
    images[:, :, 16:48, 8:40] = 1.0  # a white square exactly where the first box is
    images[:, :, :16] = images[:, :, 48:] = 0.0
    images[:, :, :, :8] = images[:, :, :, 40:] = 0.0
    out, scaled = rescale_batch(images, targets, (128, 96))  # H x2, W x1.5
    assert out.shape == (2, 3, 128, 96) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.allclose(scaled[0].boxes, torch.tensor([[12.0, 32.0, 60.0, 96.0]]))
    assert scaled[1].boxes.shape == (0, 4) and scaled[0].image_id == 0
    inside = out[0, :, 34:94, 14:58]  # the square's interior, well inside its scaled box
    assert float(inside.min()) > 0.99
    same, same_t = rescale_batch(images, targets, (64, 64))
    assert same is images and same_t is targets


def test_multi_scale_step_draws_a_size_per_training_batch_and_none_in_eval():
    torch.manual_seed(0)
    probe, step = _SizeProbe(), MultiScaleStep((32, 128))
    for _ in range(40):
        losses = step(probe.train(), _batch())
        assert set(losses) == {"x"}
    sizes = [s for s, _ in probe.seen]
    assert set(sizes) == {(32, 32), (64, 64), (96, 96), (128, 128)}  # every multiple of 32 in range
    for (side, _), (_, targets) in zip(sizes, probe.seen, strict=True):
        assert torch.allclose(targets[0].boxes, torch.tensor([[8.0, 16.0, 40.0, 48.0]]) * side / 64)
    probe.seen.clear()
    step(probe.eval(), _batch())
    assert probe.seen[0][0] == (64, 64)  # validation loss at the data's own size
    torch.manual_seed(0)
    again = _SizeProbe()
    for _ in range(40):
        step(again.train(), _batch())
    assert [s for s, _ in again.seen] == sizes  # seeded: the same sizes in the same order


def test_multi_scale_step_keeps_aspect_and_checks_its_range():
    step = MultiScaleStep((64, 64))
    probe = _SizeProbe().train()
    step(probe, (torch.rand(1, 3, 32, 64), [Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))]))
    assert probe.seen[0][0] == (64, 128)
    for bad in ((48, 64), (128, 64), (0, 32)):
        with pytest.raises(ConfigError, match="multiples of 32"):
            MultiScaleStep(bad)
