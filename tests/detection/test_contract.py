"""The detector contract (``convsight.detection.base``), checked once for every registered detector.

Each method's own tests (test_yolo.py, test_ssd.py, ...) test its maths and that it learns; what
every detector must do alike is here: identity set by ``Detector.__init__``, output types, losses in
train and eval mode, the wrong image size refused, an empty-targets training step, thresholds per
call, and a save/load round trip.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from convsight.detection.base import Detector, PostprocessConfig
from convsight.detection.build import build_detector, detector_names
from convsight.detection.roi_heads import RoIHeadConfig
from convsight.detection.rpn import RPNConfig
from convsight.detection.serialize import load_detector, save_detector
from convsight.structures import Detections, DetectorOutput, Target

from .conftest import JitteredGt, scene_batch

SIZE = (64, 64)
NUM_CLASSES = 3
HEAD = RoIHeadConfig(rois_per_image=16, pool_size=4, hidden=32)
# Small, CPU-quick settings per method (the defaults are sized for training, not for a unit test).
SMALL: dict[str, dict[str, Any]] = {
    "localization": {"hidden": 32},
    "sliding_window": {"window_shapes": ((1, 1), (2, 2))},
    "rcnn": {"warp_size": 32, "hidden": 32},
    "fast_rcnn": {"roi_head": HEAD},
    "faster_rcnn": {"roi_head": HEAD, "rpn": RPNConfig(anchor_sizes=(16.0, 32.0), pre_nms_topk_train=100,
                                                        post_nms_topk_train=32, pre_nms_topk_test=100,
                                                        post_nms_topk_test=16)},
    "ssd": {"extra_layers": 1},
    "yolo": {"head_channels": 16},
    # torchvision's detectors: random weights (their default start is COCO's file, absent offline).
    "tv:fasterrcnn_mobilenet_v3_large_320_fpn": {"backbone_weights": None},
    "tv:ssdlite320_mobilenet_v3_large": {"backbone_weights": None},
    # The ImageNet-classifier detectors on the tiny backbone (their default is MobileNetV2), seeing the
    # 64-px scenes at one small scale each.
    "imagenet_localize": {"backbone": "tiny", "backbone_weights": None, "classify_side": 64, "cam_scales": (1.0,)},
    "imagenet_sliding": {"backbone": "tiny", "backbone_weights": None, "pyramid": (64, 96)},
}
# Every registered detector, the test suite's toy included. Of torchvision's seven, the two light ones
# (one two-stage, one single-stage) stand for the wrapper they share; the five ResNet / VGG ones cost
# seconds per build here and are checked in tests/detection/test_tv.py.
ARCHS = [a for a in detector_names() if not a.startswith("tv:") or a in SMALL]


@pytest.fixture(autouse=True)
def _tv_one_thread(request):  # type: ignore[no-untyped-def]
    """torchvision's detectors here: one torch thread (on a busy 2-core machine a second one mostly
    spin-waits: their 14 tests here took 76 s of CPU with two threads, 5 s with one)."""
    params = getattr(request.node, "callspec", None)
    if params is None or not str(params.params.get("arch", "")).startswith("tv:"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, list[Target]]:
    return scene_batch(SIZE, 2, seed=11, min_objects=1, max_objects=2, min_size=14, background="plain")


def _empty(n: int) -> list[Target]:
    return [Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)) for _ in range(n)]


def _build(arch: str, batch: tuple[torch.Tensor, list[Target]], **extra: Any) -> Detector:
    torch.manual_seed(0)
    model = build_detector(arch, NUM_CLASSES, image_size=SIZE, **{**SMALL.get(arch, {}), **extra})
    _cheap_proposals(model, batch)
    return model


def _cheap_proposals(model: Detector, batch: tuple[torch.Tensor, list[Target]]) -> None:
    """R-CNN and Fast R-CNN take their proposer as an argument; selective search is too slow here."""
    if hasattr(model, "proposer"):
        model.proposer = JitteredGt(*batch)  # type: ignore[assignment]


def _check_detections(out: DetectorOutput, n: int) -> None:
    assert isinstance(out, DetectorOutput) and len(out.detections) == n
    for d in out.detections:
        assert isinstance(d, Detections) and d.boxes.shape[1] == 4
        assert ((d.labels >= 0) & (d.labels < NUM_CLASSES)).all()
        assert (d.boxes >= 0).all() and (d.boxes[:, 2] <= SIZE[1]).all() and (d.boxes[:, 3] <= SIZE[0]).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_init_sets_identity_and_builds_a_frozen_backbone(arch: str, batch) -> None:  # type: ignore[no-untyped-def]
    model = _build(arch, batch, freeze_backbone=True)
    assert model.arch == arch and model.num_classes == NUM_CLASSES and model.image_size == SIZE
    assert model.postprocess is model.config.postprocess and type(model.config).arch == arch
    if model.has_backbone:
        assert model.config.backbone == "tiny"
        assert not any(p.requires_grad for p in model.backbone.parameters())
        assert any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("backbone."))
    unfrozen = _build(arch, batch)
    assert all(p.requires_grad for p in unfrozen.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_eval_mode_gives_detections_and_losses(arch: str, batch) -> None:  # type: ignore[no-untyped-def]
    images, targets = batch
    model = _build(arch, batch).eval()
    with torch.no_grad():
        out = model(images, targets)
        _check_detections(out, len(images))
        assert out.losses and all(torch.isfinite(v) and v.ndim == 0 for v in out.losses.values())
        plain = model(images)
    _check_detections(plain, len(images))
    assert plain.losses == {}
    with pytest.raises(ValueError, match="no targets"):
        _ = plain.loss


@pytest.mark.parametrize("arch", ARCHS)
def test_train_mode_gives_the_same_loss_terms(arch: str, batch) -> None:  # type: ignore[no-untyped-def]
    images, targets = batch
    model = _build(arch, batch).eval()
    with torch.no_grad():
        eval_terms = set(model(images, targets).losses)
    out = model.train()(images, targets)
    assert set(out.losses) == eval_terms
    assert torch.isfinite(out.loss) and out.loss.requires_grad


@pytest.mark.parametrize("arch", ARCHS)
def test_wrong_image_size_is_refused(arch: str, batch) -> None:  # type: ignore[no-untyped-def]
    model = _build(arch, batch).eval()
    if arch.startswith("imagenet_"):  # any size by design (they resize inside, ImagenetDetector.any_size), not < 32
        _check_detections(model(torch.rand(1, 3, 48, 64)), 1)
        with pytest.raises(ValueError, match=f"{arch}: image sides must be >= 32"):
            model(torch.rand(1, 3, 16, 64))
    else:
        with pytest.raises(ValueError, match=f"{arch}: expected 64x64 inputs"):
            model(torch.rand(1, 3, 32, 64))
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        model(batch[0], batch[1][:1])


@pytest.mark.parametrize("arch", ARCHS)
def test_training_step_on_images_without_objects(arch: str, batch) -> None:  # type: ignore[no-untyped-def]
    images, _ = batch
    model = _build(arch, batch).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out = model(images, _empty(len(images)))
    assert all(math.isfinite(float(v.detach())) for v in out.losses.values()), out.losses
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_thresholds_are_a_forward_argument(arch: str, batch) -> None:  # type: ignore[no-untyped-def]
    images, _ = batch
    model = _build(arch, batch).eval()
    own = model.postprocess
    with torch.no_grad():
        everything = model(images, postprocess=PostprocessConfig(score_threshold=0.0, topk=1000)).detections
        strict = model(images, postprocess=own.with_thresholds(score=0.999)).detections
    assert model.postprocess is own  # nothing changed on the model
    assert all((d.scores > 0.999).all() for d in strict)
    assert sum(map(len, everything)) >= sum(map(len, strict))


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_load_give_the_same_outputs(arch: str, batch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    images, targets = batch
    model = _build(arch, batch)
    model.train()(images, targets).loss.backward()  # move BatchNorm statistics off their initial values
    model.eval()
    path = save_detector(model, tmp_path / f"{arch}.safetensors", ["a", "b", "c"])
    loaded, names = load_detector(path)
    _cheap_proposals(loaded, batch)
    assert names == ("a", "b", "c") and loaded.arch == arch and loaded.config == model.config
    assert not loaded.training
    keep_all = PostprocessConfig(score_threshold=0.0, topk=1000)
    with torch.no_grad():
        a, b = model(images, postprocess=keep_all), loaded(images, postprocess=keep_all)
    for x, y in zip(a.detections, b.detections, strict=True):
        assert torch.equal(x.boxes, y.boxes) and torch.equal(x.scores, y.scores) and torch.equal(x.labels, y.labels)
