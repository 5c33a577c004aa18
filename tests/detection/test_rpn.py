"""RPN: anchor layout, anchor sampling, losses, proposal generation and the module."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.rpn import (
    RegionProposalNetwork,
    RPNConfig,
    flatten_head_outputs,
    generate_proposals,
    rpn_loss,
    sample_anchors,
)
from convsight.errors import ConfigError
from convsight.ops.anchors import grid_anchors
from convsight.ops.box_coder import BoxCoder
from convsight.structures import Target

CFG = RPNConfig(anchor_sizes=(8.0, 16.0, 32.0), aspect_ratios=(0.5, 1.0, 2.0))


def test_anchor_count_is_h_w_a() -> None:
    rpn = RegionProposalNetwork(8, 16, CFG)
    assert rpn.num_anchors_per_location == 9
    feature = torch.rand(2, 8, 5, 7)
    assert rpn.anchors(feature).shape == (5 * 7 * 9, 4)
    assert RegionProposalNetwork(8, 16, RPNConfig()).num_anchors_per_location == 15


def test_flatten_follows_the_anchor_order() -> None:
    b, a, h, w = 1, 9, 2, 3
    obj = torch.arange(b * a * h * w, dtype=torch.float32).view(b, a, h, w)
    deltas = torch.arange(b * a * 4 * h * w, dtype=torch.float32).view(b, a * 4, h, w)
    o, d = flatten_head_outputs(obj, deltas)
    assert o.shape == (1, h * w * a) and d.shape == (1, h * w * a, 4)
    # anchor k = (i * W + j) * A + t  <->  channel t at cell (i, j)
    i, j, t = 1, 2, 4
    k = (i * w + j) * a + t
    assert o[0, k] == obj[0, t, i, j]
    assert d[0, k].tolist() == deltas[0, 4 * t: 4 * t + 4, i, j].tolist()


def test_sampling_caps_and_fraction() -> None:
    anchors = grid_anchors([(16, 16)], [8], CFG.anchor_config())  # 2304 anchors on a 128 px image
    gt = torch.tensor([[10.0, 10, 40, 40], [60, 60, 100, 90], [0, 0, 128, 128]])
    torch.manual_seed(0)
    for cfg in (CFG, RPNConfig(anchor_sizes=(8.0, 16.0, 32.0), batch_size_per_image=32, positive_fraction=0.25)):
        pos, neg, matched = sample_anchors(anchors, gt, cfg)
        n = cfg.batch_size_per_image
        assert len(pos) + len(neg) <= n and len(pos) <= cfg.positive_fraction * n and len(pos) > 0
        assert matched.shape == (len(pos), 4)
        assert set(pos.tolist()).isdisjoint(neg.tolist())
    # a tiny gt that no anchor overlaps by 0.7 still gets its best anchor (low-quality match)
    pos, _, matched = sample_anchors(anchors, torch.tensor([[3.0, 3, 9, 7]]), CFG)
    assert len(pos) >= 1 and torch.equal(matched[0], torch.tensor([3.0, 3, 9, 7]))
    pos, neg, _ = sample_anchors(anchors, torch.zeros(0, 4), CFG)  # no objects: all negatives
    assert len(pos) == 0 and len(neg) == 256


def test_loss_is_low_for_perfect_predictions() -> None:
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    anchors = grid_anchors([(4, 4)], [16], RPNConfig(anchor_sizes=(16.0, 32.0), aspect_ratios=(1.0,)).anchor_config())
    gt = torch.tensor([[8.0, 8, 40, 40]])  # exactly the 32 px anchor of cell (1, 1)
    t = Target(gt, torch.tensor([0]))
    iou_best = torch.zeros(len(anchors))
    iou_best[(anchors == gt).all(1)] = 1.0  # the one anchor exactly on the gt
    good_obj = (iou_best * 2 - 1) * 20  # confident and right
    deltas = coder.encode(gt.expand_as(anchors), anchors)[None]  # exact boxes for every anchor
    cfg = RPNConfig(anchor_sizes=(16.0, 32.0), aspect_ratios=(1.0,))
    good = rpn_loss(good_obj[None], deltas, anchors, [t], cfg, coder)
    bad = rpn_loss(-good_obj[None], torch.ones_like(deltas), anchors, [t], cfg, coder)
    assert set(good) == {"rpn_obj", "rpn_box"}
    assert good["rpn_obj"].item() < 1e-3 and good["rpn_box"].item() < 1e-6
    assert bad["rpn_obj"].item() > 5 and bad["rpn_box"].item() > 0
    empty = rpn_loss(good_obj[None], deltas, anchors, [Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))],
                     cfg, coder)
    assert empty["rpn_box"].item() == 0.0 and torch.isfinite(empty["rpn_obj"])


def test_generate_proposals_topk_nms_clip() -> None:
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    anchors = torch.tensor([[0.0, 0, 20, 20], [1, 1, 21, 21], [40, 40, 80, 80], [30, 30, 30.5, 50], [50, 50, 70, 70]])
    obj = torch.tensor([[3.0, 2.0, 1.0, 5.0, -9.0]])
    boxes, scores = generate_proposals(obj, torch.zeros(1, 5, 4), anchors, (64, 64), coder,
                                       pre_nms_topk=4, post_nms_topk=10, nms_iou=0.7, min_size=1.0)
    # anchor 3 too thin, anchor 1 suppressed by 0, anchor 4 outside pre-NMS top 4; anchor 2 clipped
    assert len(boxes) == 1 and boxes[0].tolist() == [[0.0, 0, 20, 20], [40, 40, 64, 64]]
    assert scores[0][0] > scores[0][1]
    boxes, _ = generate_proposals(obj, torch.zeros(1, 5, 4), anchors, (64, 64), coder, 5, 1)
    assert len(boxes[0]) == 1


def test_module_train_and_test_counts() -> None:
    torch.manual_seed(0)
    cfg = RPNConfig(anchor_sizes=(8.0, 16.0, 32.0), pre_nms_topk_train=50, post_nms_topk_train=20,
                    pre_nms_topk_test=30, post_nms_topk_test=5)
    rpn = RegionProposalNetwork(8, 16, cfg)
    feature = torch.rand(2, 8, 4, 4, requires_grad=True)
    targets = [Target(torch.tensor([[8.0, 8, 40, 40]]), torch.tensor([0]))] * 2
    props, losses = rpn(feature, (64, 64), targets)
    assert len(props) == 2 and all(len(p) <= 20 and not p.requires_grad for p in props)
    assert set(losses) == {"rpn_obj", "rpn_box"}
    losses["rpn_obj"].backward()
    assert feature.grad is not None
    rpn.eval()
    props, losses = rpn(feature, (64, 64))
    assert all(len(p) <= 5 for p in props) and losses == {}
    assert all((p >= 0).all() and (p <= 64).all() for p in props)


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        RPNConfig(fg_iou=0.3, bg_iou=0.7)
    with pytest.raises(ConfigError):
        RPNConfig(anchor_sizes=(0.0, 16.0))
    with pytest.raises(ConfigError):
        RPNConfig(post_nms_topk_test=0)
