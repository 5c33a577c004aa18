"""Anchor-to-gt matching (torchvision Matcher semantics) and the balanced fg/bg sampler."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import Matcher as TvMatcher

from convsight.errors import ConfigError
from convsight.ops.matching import BACKGROUND, IGNORE, MatcherConfig, match_boxes, sample_fg_bg

THRESHOLDS = [(0.7, 0.3), (0.5, 0.5), (0.6, 0.4), (0.5, 0.1)]


@st.composite
def iou_matrices(draw: st.DrawFn) -> torch.Tensor:
    """``(G, A)`` IoU-like matrices, with repeated values so that ties and zeros occur."""
    g, a = draw(st.integers(1, 5)), draw(st.integers(1, 12))
    levels = [0.0, 0.1, 0.25, 0.3, 0.45, 0.5, 0.55, 0.7, 0.8, 1.0]
    values = draw(st.lists(st.sampled_from(levels) | st.floats(0, 1), min_size=g * a, max_size=g * a))
    return torch.tensor(values, dtype=torch.float32).reshape(g, a)


def test_by_hand() -> None:
    iou = torch.tensor(
        [
            [0.9, 0.5, 0.1, 0.0, 0.2],
            [0.1, 0.6, 0.25, 0.0, 0.2],
        ]
    )
    # best per anchor: 0.9 (gt0), 0.6 (gt1), 0.25 (gt1), 0 (gt0), 0.2 (tie -> gt0)
    assert match_boxes(iou, 0.7, 0.3).tolist() == [0, IGNORE, BACKGROUND, BACKGROUND, BACKGROUND]
    assert match_boxes(iou, 0.5, 0.5).tolist() == [0, 1, BACKGROUND, BACKGROUND, BACKGROUND]
    # Low quality: gt1's best anchor (IoU 0.6) becomes foreground although 0.6 < 0.7.
    assert match_boxes(iou, 0.7, 0.3, allow_low_quality=True).tolist() == [0, 1, BACKGROUND, BACKGROUND, BACKGROUND]


def test_low_quality_ties_and_zero_rows() -> None:
    iou = torch.tensor(
        [
            [0.2, 0.2, 0.1, 0.0],  # best 0.2 at anchors 0 and 1: both promoted
            [0.0, 0.0, 0.0, 0.0],  # overlaps nothing: promotes nothing
        ]
    )
    assert match_boxes(iou, 0.7, 0.3, allow_low_quality=True).tolist() == [0, 0, BACKGROUND, BACKGROUND]


def test_empty_inputs() -> None:
    assert match_boxes(torch.zeros(0, 6), 0.7, 0.3, True).tolist() == [BACKGROUND] * 6
    out = match_boxes(torch.zeros(3, 0), 0.7, 0.3, True)
    assert out.shape == (0,) and out.dtype == torch.int64


@settings(max_examples=100, deadline=None)
@given(iou=iou_matrices(), thresholds=st.sampled_from(THRESHOLDS), low_quality=st.booleans())
def test_properties(iou: torch.Tensor, thresholds: tuple[float, float], low_quality: bool) -> None:
    high, low = thresholds
    m = match_boxes(iou, high, low, low_quality)
    g, a = iou.shape
    assert m.shape == (a,) and m.dtype == torch.int64
    assert bool(((m >= IGNORE) & (m < g)).all())
    best, argbest = iou.max(dim=0)
    fg = m >= 0
    # Above high: always matched, to the gt it overlaps most.
    assert bool((m[best >= high] == argbest[best >= high]).all())
    # Any foreground anchor is matched to a gt it overlaps most.
    assert bool((iou[m[fg], fg.nonzero().flatten()] == best[fg]).all())
    # Anchors that were not promoted fall in the -1 / -2 bands.
    row_best = iou.max(dim=1, keepdim=True).values
    promoted = ((iou == row_best) & (row_best > 0)).any(dim=0) if low_quality else torch.zeros(a, dtype=torch.bool)
    assert bool((m[(best < low) & ~promoted] == BACKGROUND).all())
    assert bool((m[(best >= low) & (best < high) & ~promoted] == IGNORE).all())
    assert bool((fg == ((best >= high) | promoted)).all())
    if low_quality:
        # Every gt that overlaps some anchor has at least one of its best anchors in the foreground.
        for j in range(g):
            if row_best[j] > 0:
                its_best = (iou[j] == row_best[j]).nonzero().flatten()
                assert bool(fg[its_best].any())


@settings(max_examples=60, deadline=None)
@given(iou=iou_matrices(), thresholds=st.sampled_from(THRESHOLDS), low_quality=st.booleans())
def test_agrees_with_torchvision_when_every_gt_overlaps(
    iou: torch.Tensor, thresholds: tuple[float, float], low_quality: bool
) -> None:
    iou = iou.clone()
    iou[:, 0] = iou[:, 0].clamp(min=0.05)  # every gt overlaps something: torchvision's quirk stays out
    high, low = thresholds
    expected = TvMatcher(high, low, allow_low_quality_matches=low_quality)(iou)
    assert match_boxes(iou, high, low, low_quality).tolist() == expected.tolist()


def test_config() -> None:
    iou = torch.rand(3, 20)
    assert MatcherConfig().match(iou).tolist() == match_boxes(iou, 0.7, 0.3, True).tolist()
    assert MatcherConfig(0.5, 0.5, False).match(iou).tolist() == match_boxes(iou, 0.5, 0.5).tolist()
    with pytest.raises(ConfigError, match="low <= high"):
        MatcherConfig(high=0.3, low=0.7)
    with pytest.raises(ConfigError):
        match_boxes(iou, 0.3, 0.7)


def _matches(num_pos: int, num_neg: int, num_ignore: int) -> torch.Tensor:
    m = torch.cat(
        (torch.arange(num_pos) % 3, torch.full((num_neg,), BACKGROUND), torch.full((num_ignore,), IGNORE))
    )
    return m[torch.randperm(len(m), generator=torch.Generator().manual_seed(123))]


@pytest.mark.parametrize(
    ("num_pos", "num_neg", "batch", "fraction", "want_pos", "want_neg"),
    [
        (10, 100, 16, 0.25, 4, 12),  # enough of both
        (2, 100, 16, 0.25, 2, 14),  # few positives: negatives fill up
        (10, 3, 16, 0.5, 8, 3),  # few negatives
        (0, 5, 8, 0.5, 0, 5),
        (5, 0, 8, 1.0, 5, 0),
    ],
)
def test_sampler_counts(num_pos: int, num_neg: int, batch: int, fraction: float, want_pos: int, want_neg: int) -> None:
    matches = _matches(num_pos, num_neg, 7)
    pos, neg = sample_fg_bg(matches, batch, fraction, torch.Generator().manual_seed(0))
    assert (len(pos), len(neg)) == (want_pos, want_neg)
    assert pos.dtype == neg.dtype == torch.int64
    assert bool((matches[pos] >= 0).all()) and bool((matches[neg] == BACKGROUND).all())
    assert len(set(pos.tolist())) == len(pos) and len(set(neg.tolist())) == len(neg)


def test_sampler_is_seeded() -> None:
    matches = _matches(50, 500, 20)

    def draw(seed: int) -> tuple[list[int], list[int]]:
        pos, neg = sample_fg_bg(matches, 64, 0.25, torch.Generator().manual_seed(seed))
        return pos.tolist(), neg.tolist()

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    with pytest.raises(ConfigError, match="positive_fraction"):
        sample_fg_bg(matches, 64, 1.5)
