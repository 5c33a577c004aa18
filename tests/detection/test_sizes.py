"""Detectors across input sizes: ``input_sides`` (convsight.detection.input_sides), the three
lineage detectors at sizes other than the one they were built at, and the engine sizing each image."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from convsight.detection import engine
from convsight.detection.build import build_detector
from convsight.detection.input_sides import input_size_for
from convsight.detection.roi_heads import RoIHeadConfig
from convsight.detection.rpn import RPNConfig
from convsight.detection.serialize import load_detector, save_detector
from convsight.detection.yolo import decode_predictions
from convsight.errors import ConfigError
from convsight.structures import Detections, DetectorOutput
from convsight.training import TrainConfig

from .conftest import scene_batch

SIZE = (64, 64)
ANCHORS = ((0.1, 0.1), (0.2, 0.25), (0.3, 0.3), (0.5, 0.4))
SMALL: dict[str, dict[str, Any]] = {
    "yolo": {"head_channels": 16, "scales": (8, 16), "anchors": ANCHORS},
    "ssd": {"extra_layers": 1},
    "faster_rcnn": {"roi_head": RoIHeadConfig(rois_per_image=16, pool_size=4, hidden=32),
                    "rpn": RPNConfig(anchor_sizes=(16.0, 32.0), pre_nms_topk_train=100, post_nms_topk_train=32,
                                     pre_nms_topk_test=100, post_nms_topk_test=16)},
}
ARCHS = tuple(SMALL)


def _build(arch: str, sides: tuple[int, int] | None = (64, 160)):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_detector(arch, 3, image_size=SIZE, input_sides=sides, **SMALL[arch])


# ---- the policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("hw", "expected"), [
    ((192, 192), (256, 256)),  # below the floor: scaled up until the shorter side is 256
    ((256, 256), (256, 256)),
    ((320, 320), (320, 320)),  # between the bounds: the image's own pixels
    ((448, 448), (448, 448)),
    ((1024, 768), (512, 384)),  # above: the longer side brought to 512, aspect kept
    ((300, 200), (384, 256)),  # 200 -> 256 is x1.28: 300 x 1.28 = 384
    ((300, 300), (288, 288)),  # 300 is no multiple of 32: the nearest one, 9 x 32
])
def test_input_size_for_keeps_pixels_between_the_bounds(hw, expected) -> None:  # type: ignore[no-untyped-def]
    assert input_size_for(hw, (256, 512)) == expected


@pytest.mark.parametrize("sides", [(100, 200), (512, 256), (0, 32), (64,)])
def test_input_sides_must_be_an_ordered_pair_of_multiples_of_32(sides) -> None:  # type: ignore[no-untyped-def]
    for arch in ARCHS:
        with pytest.raises(ConfigError, match="input_sides"):
            build_detector(arch, 3, image_size=SIZE, input_sides=sides, **SMALL[arch])


# ---- the models at other sizes ------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_without_input_sides_only_image_size_is_taken(arch: str) -> None:
    model = _build(arch, None).eval()
    with pytest.raises(ValueError, match=f"{arch}: expected 64x64 inputs"):
        model(torch.rand(1, 3, 96, 96))


@pytest.mark.parametrize("arch", ARCHS)
def test_a_detector_built_at_64_trains_and_detects_at_other_sizes(arch: str) -> None:
    model = _build(arch)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for side in (64, 96, 160):
        images, targets = scene_batch((side, side), 2, seed=side, min_objects=1, max_objects=2, min_size=10,
                                      background="plain")
        out = model.train()(images, targets)
        assert math.isfinite(float(out.loss.detach())), (side, out.losses)
        opt.zero_grad()
        out.loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        with torch.no_grad():
            det = model.eval()(images, targets, postprocess=model.postprocess.with_thresholds(score=0.0))
        assert det.losses and len(det.detections) == 2
        for d in det.detections:  # clipped to this input, not to image_size
            assert len(d) > 0 and float(d.boxes[:, 2:].max()) <= side and float(d.boxes.max()) > SIZE[0] * (side > 64)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 80, 96))


def test_yolo_anchors_keep_their_pixel_size_at_any_input() -> None:
    model = _build("yolo").eval()
    for side in (64, 128):
        raws = [torch.zeros(1, side // s, side // s, 2 * (5 + 3)) for s in (8, 16)]  # t = 0: box = anchor
        boxes, _ = decode_predictions(raws, 3, 2, "per_box", (side, side), model.anchors_at((side, side)))
        wh = (boxes[0, :, 2:] - boxes[0, :, :2]).round(decimals=3).unique(dim=0)
        pixels = torch.tensor(ANCHORS) * SIZE[0]  # (w, h) fractions of the 64 px it was built at
        assert torch.allclose(wh.sort(0).values, pixels.sort(0).values, atol=1e-4), side


@pytest.mark.parametrize("arch", ["ssd", "faster_rcnn"])
def test_default_boxes_and_anchors_keep_their_pixel_sizes(arch: str) -> None:
    model = _build(arch).eval()

    def anchor_shapes(side: int) -> torch.Tensor:
        x = torch.zeros(1, 3, side, side)
        a = model.predict(x)[2] if arch == "ssd" else model.rpn.anchors(model.backbone(x)[0])
        return (a[:, 2:] - a[:, :2]).round(decimals=3).unique(dim=0)

    small, large = anchor_shapes(64), anchor_shapes(160)
    assert torch.equal(small, large)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_saved_detector_keeps_its_input_sides(arch: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _build(arch)
    path = save_detector(model, tmp_path / "d.safetensors", ("a", "b", "c"))
    loaded, _ = load_detector(path)
    assert loaded.config.input_sides == (64, 160) and loaded.image_size == SIZE


# ---- the engine ---------------------------------------------------------------------------------


def _spy(model: torch.nn.Module, seen: list[tuple[int, int]]) -> None:
    """Replace forward: record each batch's size; one detection per image covering the whole input."""
    def forward(images, targets=None, postprocess=None):  # type: ignore[no-untyped-def]
        h, w = images.shape[-2:]
        seen.append((h, w))
        box = torch.tensor([[0.0, 0.0, float(w), float(h)]])
        dets = [Detections(box, torch.ones(1), torch.zeros(1, dtype=torch.int64)) for _ in images]
        return DetectorOutput(dets, {})
    model.forward = forward  # type: ignore[method-assign]


def test_predict_runs_each_image_at_its_own_size_and_keeps_the_order() -> None:
    model, seen = _build("yolo", (64, 160)), []
    _spy(model, seen)
    sides = [(40, 40), (96, 96), (128, 96), (96, 96), (300, 300)]  # 40 -> 64 (floor), 300 -> 160 (cap)
    images = [torch.rand(3, h, w) for h, w in sides]
    dets = engine.predict(model, images, batch_size=8)
    assert sorted(set(seen)) == [(64, 64), (96, 96), (128, 96), (160, 160)]
    for (h, w), d in zip(sides, dets, strict=True):  # the whole input, scaled back: the image's own frame
        assert torch.allclose(d.boxes[0], torch.tensor([0.0, 0.0, w, h]))
    fixed, seen_fixed = _build("yolo", None), []
    _spy(fixed, seen_fixed)
    engine.predict(fixed, images, batch_size=8)
    assert set(seen_fixed) == {SIZE}


def test_evaluate_sizes_each_image_and_scores_in_its_own_pixels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig

    a = write_synthetic(tmp_path / "a", 3, SynthConfig(image_size=(64, 64), min_objects=1, max_objects=1), seed=1)
    b = write_synthetic(tmp_path / "b", 2, SynthConfig(image_size=(128, 128), min_objects=1, max_objects=1), seed=2)
    both = replace(a, images=a.images[:1] + b.images + a.images[1:])
    model, seen = _build("yolo", (64, 160)), []
    _spy(model, seen)
    ev = engine.evaluate(model, both, batch_size=8, loss=False)
    assert set(seen) == {(64, 64), (128, 128)}
    assert [tuple(d.boxes[0].tolist()) for d in ev.detections] == [
        (0.0, 0.0, float(im.width), float(im.height)) for im in both.images]


def test_train_with_input_sides_trains_multi_scale(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig
    from convsight.training import batches

    data = write_synthetic(tmp_path / "d", 6, SynthConfig(image_size=(64, 64), max_objects=2, min_size=10), seed=3)
    sizes: list[tuple[int, ...]] = []
    original = batches.rescale_batch

    def record(images, targets, size):  # type: ignore[no-untyped-def]
        sizes.append(tuple(size))
        return original(images, targets, size)

    monkeypatch.setattr(batches, "rescale_batch", record)
    cfg = TrainConfig(epochs=2, batch_size=2, lr=1e-3, optimizer="adamw", progress=False, seed=0)
    out = engine.train("yolo", data, data, tmp_path / "run", cfg, {**SMALL["yolo"], "image_size": [64, 64],
                                                                  "input_sides": [64, 128]})
    assert len(sizes) == 6 and len(set(sizes)) > 1  # 3 steps x 2 epochs, not all at one size
    assert all(s[0] == s[1] and s[0] in (64, 96, 128) for s in sizes)
    assert load_detector(out.weights)[0].config.input_sides == (64, 128)


def test_training_can_start_from_a_detector_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from convsight.errors import DatasetError, WeightsError

    trained = _build("yolo", None)
    path = save_detector(trained, tmp_path / "yolo.safetensors", ("a", "b", "c"))
    model = engine.start_model("yolo", ("a", "b", "c"), {"input_sides": [64, 128]}, init=path)
    assert model.config.input_sides == (64, 128)  # the override, on the file's config
    assert model.config.anchors == ANCHORS and model.config.scales == (8, 16)  # the file's, not yolo's defaults
    for (name, a), b in zip(trained.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(DatasetError, match="classes"):
        engine.start_model("yolo", ("a", "b", "x"), init=path)
    with pytest.raises(WeightsError, match="not 'ssd'"):
        engine.start_model("ssd", ("a", "b", "c"), init=path)
    with pytest.raises(ConfigError, match="unknown option"):
        engine.start_model("yolo", ("a", "b", "c"), {"grid": 7}, init=path)


def test_cli_train_init_and_keep_last(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The README's multi-scale recipe as a command: `detect train --init FILE --set input_sides=... --keep last`
    starts from the file's weights and config, and writes the last epoch's weights (not the best one's)."""
    import json

    from convsight.io.synth_writer import write_synthetic
    from convsight.io.synthetic import SynthConfig
    from convsight.training import load_checkpoint

    data = write_synthetic(tmp_path / "d", 6, SynthConfig(image_size=(64, 64), max_objects=2, min_size=10), seed=3,
                           fmt="coco")
    torch.manual_seed(0)
    built = build_detector("yolo", len(data.class_names), image_size=SIZE, **SMALL["yolo"])
    start = save_detector(built, tmp_path / "start.safetensors", data.class_names)
    r = cli("detect", "train", "--arch", "yolo", "--data", tmp_path / "d", "--val", tmp_path / "d", "--init", start,
            "--set", "input_sides=[64,128]", "--epochs", "2", "--batch-size", "2", "--keep", "last",
            "--out", tmp_path / "run", "--json")
    assert r.code == 0, r.stderr
    model, _ = load_detector(json.loads(r.stdout)["weights"])
    assert model.config.input_sides == (64, 128) and model.config.anchors == ANCHORS
    last = load_checkpoint(tmp_path / "run" / "last.pt").model
    assert all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
    r = cli("detect", "train", "--arch", "yolo", "--data", tmp_path / "d", "--keep", "first", "--out", tmp_path / "x")
    assert r.code == 2 and "--keep" in r.stderr and r.stderr.count("\n") == 1
