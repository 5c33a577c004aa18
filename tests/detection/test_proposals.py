"""Selective-search proposals and their per-image cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convsight.detection import proposals as proposals_mod
from convsight.detection.proposals import ProposalCache, ProposalConfig, selective_search
from convsight.errors import ConfigError
from convsight.ops.boxes import box_iou

RECT = torch.tensor([[20.0, 24.0, 76.0, 68.0]])  # x1, y1, x2, y2


def _rows(boxes: torch.Tensor) -> set[tuple[float, ...]]:
    # OpenCV ranks regions with libc rand(), so selective search's ORDER changes from call to call;
    # compare box sets.
    return {tuple(b) for b in boxes.tolist()}


def _scene() -> torch.Tensor:
    from convsight.io.images import to_tensor
    from convsight.io.synthetic import SynthConfig, render_scene

    cfg = SynthConfig(image_size=(80, 80), min_objects=4, max_objects=6, min_size=8, background="texture")
    return to_tensor(render_scene(cfg, seed=0, index=0).image)


def _rectangle_image() -> torch.Tensor:
    """A big plain red rectangle on a plain grey 96 x 96 background, ``(3, H, W)`` in [0, 1]."""
    image = torch.full((3, 96, 96), 0.5)
    x1, y1, x2, y2 = (int(v) for v in RECT[0])
    image[:, y1:y2, x1:x2] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    return image


def test_shapes_and_box_validity() -> None:
    image = _rectangle_image()
    config = ProposalConfig(dedup_iou=1.0)  # no order-dependent dedup: the box set is deterministic
    boxes = selective_search(image, config)
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.dtype == torch.float32 and len(boxes) > 0
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes >= 0).all() and (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 96).all()
    # The uint8 (H, W, 3) path gives the same boxes as the float tensor path.
    rgb = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert _rows(selective_search(rgb, config)) == _rows(boxes)
    with pytest.raises(ValueError):
        selective_search(torch.rand(96, 96))


def test_cap_respected() -> None:
    image = _scene()
    uncapped = selective_search(image, ProposalConfig(max_proposals=2000, dedup_iou=1.0))
    assert len(uncapped) > 10
    capped = selective_search(image, ProposalConfig(max_proposals=10, dedup_iou=1.0))
    assert len(capped) == 10 and _rows(capped) <= _rows(uncapped)
    assert len(selective_search(image, ProposalConfig(max_proposals=7))) == 7  # with dedup too


def test_finds_a_big_plain_rectangle() -> None:
    boxes = selective_search(_rectangle_image())
    assert box_iou(RECT, boxes).max() > 0.7


def test_min_size_and_dedup() -> None:
    image = _rectangle_image()
    boxes = selective_search(image, ProposalConfig(min_size=30))
    assert ((boxes[:, 2:] - boxes[:, :2]) >= 30).all()
    boxes = selective_search(image, ProposalConfig(dedup_iou=0.5))
    iou = box_iou(boxes, boxes).fill_diagonal_(0)
    assert (iou <= 0.5).all()


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        ProposalConfig(mode="slow")
    with pytest.raises(ConfigError):
        ProposalConfig(max_proposals=0)


def test_cache_returns_same_tensor_without_recomputing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []
    real = proposals_mod.selective_search

    def counting(image, config=ProposalConfig()):  # noqa: ANN001, ANN202
        calls.append(1)
        return real(image, config)

    monkeypatch.setattr(proposals_mod, "selective_search", counting)
    image = _rectangle_image()
    cache = ProposalCache(ProposalConfig(max_proposals=50), folder=tmp_path)
    first = cache(image)
    assert len(calls) == 1 and 0 < len(first) <= 50
    assert cache(image.clone()) is first  # same content -> the same tensor object
    assert len(calls) == 1
    other = image.roll(5, dims=-1)
    both = cache.batch(torch.stack([image, other]))
    assert both[0] is first and len(calls) == 2
    # A new cache over the same folder loads from disk instead of recomputing.
    again = ProposalCache(ProposalConfig(max_proposals=50), folder=tmp_path)(image)
    assert len(calls) == 2
    torch.testing.assert_close(again, first)
    # A different config is a different key.
    ProposalCache(ProposalConfig(max_proposals=5))(image)
    assert len(calls) == 3


def test_selective_search_order_repeats():
    from convsight.detection.proposals import ProposalConfig, selective_search

    g = torch.Generator().manual_seed(3)
    image = torch.rand(3, 64, 64, generator=g)
    cfg = ProposalConfig(max_proposals=50)
    assert torch.equal(selective_search(image, cfg), selective_search(image, cfg))


def test_cache_is_flip_equivariant_and_runs_once_per_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Training flips images at random: an image and its mirror must cost one selective-search run,
    and each must get boxes that fit it (the mirror's boxes mirrored), whichever came first."""
    calls = []
    real = proposals_mod.selective_search

    def counting(image: torch.Tensor, config: ProposalConfig) -> torch.Tensor:
        calls.append(1)
        return real(image, config)

    monkeypatch.setattr(proposals_mod, "selective_search", counting)
    image = torch.full((3, 96, 96), 0.5)
    image[:, 24:68, 4:50] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]  # off centre: the mirror differs
    mirror = image.flip(-1)
    w = image.shape[-1]
    boxes = ProposalCache(folder=tmp_path)(image)
    flipped = ProposalCache(folder=tmp_path / "other")(mirror)  # mirror first, in another cache
    assert len(calls) == 2  # one run each, both on the same (canonical) orientation...
    expected = torch.stack([w - flipped[:, 2], flipped[:, 1], w - flipped[:, 0], flipped[:, 3]], 1)
    torch.testing.assert_close(boxes, expected)  # ...so the boxes agree, mirrored
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (flipped[:, 0] <= flipped[:, 2]).all()
    cache = ProposalCache()
    cache(mirror), cache(image)
    assert len(calls) == 3  # the second orientation cost no run
    # the rectangle is found where it is in each orientation
    assert box_iou(torch.tensor([[4.0, 24.0, 50.0, 68.0]]), cache(image)).max() > 0.9
    assert box_iou(torch.tensor([[w - 50.0, 24.0, w - 4.0, 68.0]]), cache(mirror)).max() > 0.9
