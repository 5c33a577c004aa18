"""Class-wise NMS with thresholds and top-k, checked against a plain O(N^2) greedy reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convsight.errors import ConfigError
from convsight.ops.nms import batched_nms_topk, postprocess_detections
from convsight.structures import Detections

# Thresholds that no IoU of small integer boxes can equal exactly, so float rounding cannot flip a tie.
THRESHOLDS = [0.3137, 0.4321, 0.7071]


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(
    boxes: list[list[float]],
    scores: list[float],
    labels: list[int],
    iou_threshold: float,
    score_threshold: float = 0.0,
    topk: int | None = None,
    pre_nms_topk: int | None = None,
) -> list[int]:
    """Greedy NMS: best first, drop same-label boxes with IoU above the threshold."""
    order = sorted((i for i in range(len(scores)) if scores[i] > score_threshold), key=lambda i: -scores[i])
    if pre_nms_topk is not None:
        order = order[:pre_nms_topk]
    kept: list[int] = []
    for i in order:
        if all(labels[k] != labels[i] or _iou(boxes[k], boxes[i]) <= iou_threshold for k in kept):
            kept.append(i)
    return kept if topk is None else kept[:topk]


@st.composite
def detections(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = draw(st.integers(0, 25))
    rows = []
    for _ in range(n):
        x, y = draw(st.integers(0, 30)), draw(st.integers(0, 30))
        rows.append([x, y, x + draw(st.integers(1, 15)), y + draw(st.integers(1, 15))])
    boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    perm = draw(st.permutations(list(range(n))))
    scores = (torch.tensor(perm, dtype=torch.float32) + 1) / (n + 1)  # distinct, in (0, 1)
    labels = torch.tensor([draw(st.integers(0, 2)) for _ in range(n)], dtype=torch.int64)
    return boxes, scores, labels


@settings(max_examples=100, deadline=None)
@given(
    dets=detections(),
    thr=st.sampled_from(THRESHOLDS),
    score_thr=st.sampled_from([0.0, 0.33]),
    topk=st.none() | st.integers(0, 10),
    pre=st.none() | st.integers(0, 15),
)
def test_matches_reference(
    dets: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    thr: float,
    score_thr: float,
    topk: int | None,
    pre: int | None,
) -> None:
    boxes, scores, labels = dets
    keep = batched_nms_topk(boxes, scores, labels, thr, score_thr, topk, pre)
    assert keep.dtype == torch.int64
    expected = reference_nms(boxes.tolist(), scores.tolist(), labels.tolist(), thr, score_thr, topk, pre)
    assert keep.tolist() == expected
    # Subset of the input, scores descending, no same-class pair above the threshold.
    assert len(set(keep.tolist())) == len(keep) and all(0 <= i < len(boxes) for i in keep.tolist())
    kept_scores = scores[keep].tolist()
    assert kept_scores == sorted(kept_scores, reverse=True)
    kb, kl = boxes[keep].tolist(), labels[keep].tolist()
    for i in range(len(kb)):
        for j in range(i + 1, len(kb)):
            assert kl[i] != kl[j] or _iou(kb[i], kb[j]) <= thr


def test_by_hand() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # Box 1 overlaps box 0 (IoU 81 / 119 = 0.68) in the same class: suppressed. Box 2 is box 0's twin
    # but of another class: kept.
    labels = torch.tensor([0, 0, 1, 0])
    assert batched_nms_topk(boxes, scores, labels, 0.5).tolist() == [0, 2, 3]
    assert batched_nms_topk(boxes, scores, labels, 0.7).tolist() == [0, 1, 2, 3]
    assert batched_nms_topk(boxes, scores, labels, 0.5, score_threshold=0.65).tolist() == [0, 2]
    assert batched_nms_topk(boxes, scores, labels, 0.5, topk=1).tolist() == [0]


def test_empty_inputs() -> None:
    empty = batched_nms_topk(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64
    none_left = batched_nms_topk(torch.rand(3, 4), torch.full((3,), 0.1), torch.zeros(3, dtype=torch.int64), 0.5, 0.5)
    assert none_left.shape == (0,) and none_left.dtype == torch.int64
    dets = postprocess_detections(torch.zeros(0, 4), torch.zeros(0, 3))
    assert isinstance(dets, Detections) and len(dets) == 0


def test_bad_arguments() -> None:
    args = (torch.zeros(1, 4), torch.ones(1), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ConfigError, match="iou_threshold"):
        batched_nms_topk(*args, iou_threshold=1.5)
    with pytest.raises(ConfigError, match="topk"):
        batched_nms_topk(*args, iou_threshold=0.5, topk=-1)


def test_postprocess_per_class_scores() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [-5, 0, 30, 8]], dtype=torch.float32)
    scores = torch.tensor([[0.9, 0.01], [0.8, 0.7], [0.02, 0.6]])  # (N, C), no background column
    dets = postprocess_detections(boxes, scores, iou_threshold=0.5, score_threshold=0.05, image_size=(20, 20))
    # Candidates above 0.05: (0, c0) 0.9, (1, c0) 0.8 suppressed by (0, c0), (1, c1) 0.7, (2, c1) 0.6.
    assert dets.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert dets.labels.tolist() == [0, 1, 1]
    assert dets.boxes.tolist() == [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 20, 8]]  # last one clipped
    assert postprocess_detections(boxes, scores, min_size=12, image_size=(20, 20)).labels.tolist() == []


def test_postprocess_class_specific_boxes_and_flat_scores() -> None:
    boxes = torch.tensor([[[0, 0, 10, 10], [20, 20, 30, 30]]], dtype=torch.float32)  # (N=1, C=2, 4)
    dets = postprocess_detections(boxes, torch.tensor([[0.9, 0.8]]))
    assert dets.boxes.tolist() == [[0, 0, 10, 10], [20, 20, 30, 30]] and dets.labels.tolist() == [0, 1]
    flat = postprocess_detections(boxes[:, 0], torch.tensor([0.9]), torch.tensor([4]))
    assert flat.labels.tolist() == [4] and flat.labels.dtype == torch.int64
    with pytest.raises(ValueError, match="labels"):
        postprocess_detections(boxes[:, 0], torch.tensor([0.9]))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60), st.integers(1, 5), st.sampled_from([0.0, 0.05, 0.3, 0.9]), st.integers(0, 2**31 - 1))
def test_postprocess_drops_background_rows_without_changing_the_result(n: int, c: int, thr: float, seed: int) -> None:
    """Rows whose best score is under the threshold are dropped before the (N, C) expansion; the
    detections must be exactly those of running NMS on every (box, class) pair above it."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, 40, (n, 2), generator=g).float()
    boxes = torch.cat([xy, xy + torch.randint(2, 20, (n, 2), generator=g).float()], 1)  # (N, 4)
    scores = torch.rand(n, c, generator=g) ** 3  # mostly low: many rows entirely under the threshold
    got = postprocess_detections(boxes, scores, iou_threshold=0.4321, score_threshold=thr, topk=None)
    pairs = boxes[:, None, :].expand(n, c, 4).reshape(-1, 4)
    flat, labels = scores.reshape(-1), torch.arange(c).repeat(n)
    keep = batched_nms_topk(pairs, flat, labels, 0.4321, thr)
    assert got.scores.tolist() == flat[keep].tolist()
    assert got.labels.tolist() == labels[keep].tolist()
    assert got.boxes.tolist() == pairs[keep].tolist()
