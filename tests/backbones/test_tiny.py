"""The tiny CPU backbone: shapes, size and speed."""

from __future__ import annotations

import time

import torch

from convsight.backbones import build_backbone, num_parameters


def test_tiny_levels_and_shapes() -> None:
    bb = build_backbone("tiny")
    expected = [(16, 2), (32, 4), (64, 8), (128, 16), (256, 32)]
    assert [(f.channels, f.stride) for f in bb.feature_info] == expected
    feats = bb(torch.rand(2, 3, 96, 64))
    assert [tuple(f.shape) for f in feats] == [
        (2, 16, 48, 32), (2, 32, 24, 16), (2, 64, 12, 8), (2, 128, 6, 4), (2, 256, 3, 2)
    ]


def test_tiny_detector_levels() -> None:
    bb = build_backbone("tiny", out_levels=(8, 16, 32))
    assert [f.name for f in bb.feature_info] == ["stage3", "stage4", "stage5"]
    assert [f.shape[1] for f in bb(torch.rand(1, 3, 64, 64))] == [64, 128, 256]


def test_tiny_is_small_and_fast_on_cpu() -> None:
    bb = build_backbone("tiny").eval()
    assert num_parameters(bb) < 1_000_000
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        bb(x)  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            bb(x)
    # ~5 ms on 2 cores here; the bound is loose because other jobs share the machine.
    assert (time.perf_counter() - start) / 3 < 0.25
