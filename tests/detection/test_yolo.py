"""YOLO: target encoding, responsibility, losses, decoding, config checks and the detector contract."""

from __future__ import annotations

import math

import pytest
import torch

from convsight.detection.yolo import (
    YoloConfig,
    assign_responsible,
    assign_scales,
    decode_predictions,
    encode_targets,
    paired_iou,
    split_raw,
    yolo_loss,
    yolo_to_xyxy,
)
from convsight.errors import ConfigError
from convsight.ops.boxes import box_iou
from convsight.structures import Target

from .conftest import adam_steps, make_target, scene_batch

SIZE = (64, 64)  # a 4 x 4 grid of 16 px cells at stride 16


_target = make_target


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    images, targets = scene_batch(SIZE, 4, seed=1, max_objects=3, min_size=10, background="plain")  # 3, 2, 1 and 0 objects
    assert [len(t) for t in targets] == [3, 2, 1, 0]
    return images, targets


def _model(**overrides):
    from convsight.detection.build import build_detector

    torch.manual_seed(0)
    return build_detector("yolo", num_classes=3, **{"image_size": SIZE, "scales": (16,), "head_channels": 32,
                                                    **overrides})


# ---- encoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cx", "cy", "row", "col"), [
    (15.9, 15.9, 0, 0),  # just left of / above the first border
    (16.0, 16.0, 1, 1),  # exactly on a border: the cell to the right / below
    (16.1, 47.9, 2, 1),
    (0.0, 63.99, 3, 0),
    (64.0, 64.0, 3, 3),  # on the image's far edge: clamped into the last cell
])
def test_object_lands_in_the_cell_of_its_centre(cx: float, cy: float, row: int, col: int) -> None:
    box = [cx - 5, cy - 3, cx + 5, cy + 3]
    enc = encode_targets([_target([box], [2])], (4, 4), SIZE, num_classes=3, boxes_per_cell=2)
    assert enc["mask"].shape == (1, 4, 4, 2) and enc["box"].shape == (1, 4, 4, 2, 4)
    assert enc["onehot"].shape == (1, 4, 4, 2, 3)
    assert enc["mask"].nonzero().tolist() == [[0, row, col, 0]]  # first free slot of that cell
    assert enc["labels"][0, row, col, 0] == 2 and enc["onehot"][0, row, col, 0].tolist() == [0, 0, 1]
    x, y, w, h = enc["box"][0, row, col, 0].tolist()
    assert 0 <= x <= 1 and 0 <= y <= 1
    assert w == pytest.approx(10 / 64) and h == pytest.approx(6 / 64)
    back = yolo_to_xyxy(enc["box"], SIZE)[0, row, col, 0]  # decoding the target gives the gt back
    torch.testing.assert_close(back, torch.tensor(box), atol=1e-4, rtol=0)


def test_same_cell_objects_take_free_slots_then_drop() -> None:
    t = _target([[2, 2, 10, 10], [3, 3, 9, 12], [4, 4, 8, 8]], [0, 1, 2])  # all centred in cell (0, 0)
    enc = encode_targets([t], (4, 4), SIZE, 3, boxes_per_cell=2)
    assert enc["labels"][0, 0, 0].tolist() == [0, 1] and int(enc["dropped"]) == 1
    enc = encode_targets([t], (4, 4), SIZE, 3, boxes_per_cell=2, max_per_cell=1)  # "shared" layout
    assert enc["labels"][0, 0, 0].tolist() == [0, -1] and int(enc["dropped"]) == 2
    enc = encode_targets([t], (4, 4), SIZE, 3, boxes_per_cell=2, keep=[torch.tensor([False, True, True])])
    assert enc["labels"][0, 0, 0].tolist() == [1, 2] and int(enc["dropped"]) == 0


def test_anchors_pick_the_best_shaped_slot() -> None:
    anchors = torch.tensor([[0.1, 0.3], [0.3, 0.1]])  # tall, wide
    t = _target([[20, 20, 40, 26], [22, 20, 26, 38]], [0, 1])  # wide then tall, both in cell (1, 1)
    enc = encode_targets([t], (4, 4), SIZE, 3, boxes_per_cell=2, anchors=anchors)
    assert enc["labels"][0, 1, 1].tolist() == [1, 0]


def test_empty_targets_and_bad_labels() -> None:
    enc = encode_targets([_target([], [])], (4, 4), SIZE, 3)
    assert not enc["mask"].any() and (enc["labels"] == -1).all()
    with pytest.raises(ValueError):
        encode_targets([_target([[0, 0, 5, 5]], [3])], (4, 4), SIZE, 3)


def test_assign_scales_by_size_and_by_anchor() -> None:
    boxes = torch.tensor([[0, 0, 12, 12], [0, 0, 60, 60]], dtype=torch.float32)
    assert assign_scales(boxes, SIZE, (8, 16), [None, None]).tolist() == [0, 1]
    anchors = [torch.tensor([[0.2, 0.2]]), torch.tensor([[0.9, 0.9]])]
    assert assign_scales(boxes, SIZE, (8, 16), anchors).tolist() == [0, 1]
    assert assign_scales(boxes, SIZE, (16,), [None]).tolist() == [0, 0]


# ---- responsibility, loss, decoding -------------------------------------------------------------


def test_responsible_predictor_has_highest_iou() -> None:
    t = _target([[2, 2, 14, 14], [4, 4, 12, 12]], [0, 1])
    enc = encode_targets([t], (4, 4), SIZE, 3, boxes_per_cell=2)
    pred = torch.zeros(1, 4, 4, 2, 4)
    pred[0, 0, 0, 0] = torch.tensor([30.0, 30, 40, 40])  # overlaps nothing
    pred[0, 0, 0, 1] = torch.tensor([2.0, 2, 14, 14])  # exactly the first gt
    resp, slot = assign_responsible(pred, enc, anchors=False)
    assert resp[0, 0, 0].tolist() == [True, True] and slot[0, 0, 0].tolist() == [1, 0]
    assert resp.sum() == 2
    resp, slot = assign_responsible(pred, enc, anchors=True)  # anchors: the encoded slot, whatever the box
    assert slot[0, 0, 0].tolist() == [0, 1]
    assert paired_iou(pred[0, 0, 0, 1], enc["xyxy"][0, 0, 0, 0]) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["lecture", "yolov1"])
def test_perfect_prediction_has_no_box_or_class_error(kind: str) -> None:
    enc = encode_targets([_target([[2, 2, 14, 26]], [1])], (4, 4), SIZE, 3, boxes_per_cell=1)
    pred_box = enc["box"].clone()  # (1, 4, 4, 1, 4)
    cls_logit = enc["onehot"] * 50.0
    obj_logit = torch.where(enc["mask"], 20.0, -20.0)
    losses = yolo_loss(obj_logit, pred_box, cls_logit, enc, image_size=SIZE, kind=kind)
    assert set(losses) == {"obj", "noobj", "box", "cls"}
    for v in losses.values():
        assert v.item() == pytest.approx(0.0, abs=1e-4)
    pred_box[0, 0, 0, 0, 0] += 0.5  # x off by half a cell: lambda_coord * 0.25
    box = yolo_loss(obj_logit, pred_box, cls_logit, enc, image_size=SIZE, kind=kind)["box"]
    assert box.item() == pytest.approx(1.25)


@pytest.mark.parametrize("kind", ["lecture", "yolov1"])
def test_with_anchors_the_size_error_is_relative(kind: str) -> None:
    """Anchors: sizes are learnt as log offsets, so a small and a big box each predicted at half
    their width cost the same (on image fractions the small one would cost 100 times less)."""
    anchors = torch.tensor([[0.05, 0.05], [0.5, 0.5]])
    costs = []
    for side, slot in ((3.2, 0), (32.0, 1)):  # 0.05 and 0.5 of the 64 px image, each on its own anchor
        enc = encode_targets([_target([[16 - side / 2, 16 - side / 2, 16 + side / 2, 16 + side / 2]], [0])],
                             (2, 2), SIZE, 3, boxes_per_cell=2, anchors=anchors)
        assert enc["mask"][0, 0, 0, slot]
        pred_box = enc["box"].clone()
        obj_logit, cls_logit = torch.where(enc["mask"], 20.0, -20.0), enc["onehot"] * 50.0
        assert yolo_loss(obj_logit, pred_box, cls_logit, enc, image_size=SIZE, kind=kind,
                         anchors=anchors)["box"].item() == pytest.approx(0.0, abs=1e-5)
        pred_box[0, 0, 0, slot, 2] *= 0.5
        costs.append(yolo_loss(obj_logit, pred_box, cls_logit, enc, image_size=SIZE, kind=kind,
                               anchors=anchors)["box"].item())
    assert costs[0] == pytest.approx(costs[1], rel=1e-4)
    assert costs[0] == pytest.approx(5.0 * math.log(2.0) ** 2, rel=1e-4)  # lambda_coord * log(1/2)^2


@pytest.mark.parametrize("layout", ["per_box", "shared"])
def test_decode_shapes_and_scores(layout: str) -> None:
    nb, c = 2, 3
    depth = nb * (5 + c) if layout == "per_box" else 5 * nb + c
    raws = [torch.randn(2, 8, 8, depth), torch.randn(2, 4, 4, depth)]
    boxes, scores = decode_predictions(raws, c, nb, layout, SIZE)
    n = (64 + 16) * nb
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, c)
    assert (scores >= 0).all() and (scores.sum(-1) <= 1 + 1e-6).all()  # obj x a probability vector
    assert (boxes[..., 2:] >= boxes[..., :2]).all()
    obj, t, cls = split_raw(raws[0], nb, c, layout)
    assert obj.shape == (2, 8, 8, nb) and t.shape == (2, 8, 8, nb, 4)
    assert cls.shape == ((2, 8, 8, nb, c) if layout == "per_box" else (2, 8, 8, 1, c))


# ---- config and detector --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"layout": "grid"}, {"loss": "mse"}, {"scales": (32, 16)}, {"image_size": (100, 100)},
    {"anchors": ((0.1, 0.1),), "scales": (16, 32)}, {"anchors": ((20.0, 30.0),)}, {"boxes_per_cell": 0},
    {"head": "dense"},
])
def test_bad_config(bad: dict) -> None:
    with pytest.raises(ConfigError):
        YoloConfig(**bad)


def test_config_grid_and_anchor_split() -> None:
    cfg = YoloConfig()
    assert cfg.grid_sizes() == [(7, 7)] and cfg.num_boxes == 2  # YOLOv1's S = 7, B = 2
    cfg = YoloConfig(scales=(16, 32), anchors=((0.5, 0.5), (0.1, 0.1), (0.3, 0.2), (0.2, 0.2)))
    assert cfg.num_boxes == 2 and cfg.grid_sizes() == [(14, 14), (7, 7)]
    torch.testing.assert_close(cfg.anchors_per_scale()[0], torch.tensor([[0.1, 0.1], [0.2, 0.2]]))


@pytest.mark.parametrize("overrides", [
    {}, {"loss": "yolov1"}, {"layout": "shared"}, {"layout": "shared", "loss": "yolov1"},
    {"anchors": ((0.2, 0.2), (0.4, 0.3))},
    {"scales": (8, 16), "anchors": ((0.1, 0.1), (0.2, 0.2), (0.3, 0.4), (0.5, 0.5)), "loss": "yolov1"},
    {"scales": (8, 16)}, {"head": "separable"},
])
def test_every_variant_learns(batch: tuple[torch.Tensor, list[Target]], overrides: dict) -> None:
    """The contract (tests/detection/test_contract.py) runs the default variant; here each variant of
    loss, layout, anchors and scales must fit a fixed batch, and an image without objects teaches
    only "no object"."""
    images, targets = batch
    model = _model(**overrides)
    out = model.eval()(images, [_target([], []) for _ in range(4)])
    assert out.losses["box"].item() == 0.0 and out.losses["obj"].item() == 0.0 and out.losses["noobj"] > 0
    history = [h["loss"] for h in adam_steps(model, images, targets, steps=30, lr=3e-3)]
    assert history[-1] < 0.25 * history[0], history  # observed 0.01 - 0.1


def test_trained_model_detects_in_eval_mode(batch: tuple[torch.Tensor, list[Target]]) -> None:
    images, targets = batch
    model = _model()
    adam_steps(model, images, targets, steps=40, lr=3e-3)
    with torch.no_grad():  # re-estimate BatchNorm statistics for the final weights (tiny-batch training)
        for _ in range(20):
            model(images)
    model.eval()
    out = model(images, targets)
    assert set(out.losses) == {"obj", "noobj", "box", "cls"}
    assert [len(d) for d in out.detections][3] == 0  # nothing on the empty image at the default threshold
    first = out.detections[0]
    assert len(first) >= 2
    assert box_iou(first.boxes[:1], targets[0].boxes).max() > 0.5


def test_separable_head_is_much_lighter() -> None:
    """Same input and output, same receptive field (two 3x3 layers), far fewer weights."""
    conv, sep = (_model(head=h, head_channels=128).heads[0].eval() for h in ("conv", "separable"))
    x = torch.rand(2, 128, 4, 4)
    assert conv(x).shape == sep(x).shape == (2, 2 * (5 + 3), 4, 4)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(sep) * 6 < count(conv), (count(sep), count(conv))
    # Receptive field: an impulse at the centre reaches a 5 x 5 neighbourhood in both.
    for head in (conv, sep):
        for m in head.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.constant_(m.weight, 0.1)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
        impulse = torch.zeros(1, 128, 9, 9)
        impulse[..., 4, 4] = 1.0
        reach = head(impulse)[0, 0] != 0  # eval mode, untouched BatchNorm statistics
        assert reach.nonzero().min(0).values.tolist() == [2, 2] and reach.nonzero().max(0).values.tolist() == [6, 6]


def test_build_detector_registered() -> None:
    from convsight.detection.build import build_detector, detector_names

    assert "yolo" in detector_names()
    model = build_detector("yolo", num_classes=3)
    assert model.config.image_size == (224, 224) and model.num_classes == 3
    assert model.postprocess.iou_threshold == 0.45
