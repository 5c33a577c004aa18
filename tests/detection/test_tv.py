"""torchvision's detectors behind the Detector contract (``convsight.detection.tv``), offline, random weights.

The wrapper is checked against torchvision's own pipeline (its builder, its transform, its COCO label
ids) given the same weights; the two light models stand for all seven (one two-stage, one single-stage).
The real-photo tests run only where torchvision's COCO files are in the local torch cache.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision.models.detection as tvd
from torchvision.models._api import WeightsEnum

from convsight.detection.base import PostprocessConfig
from convsight.detection.build import build_detector
from convsight.detection.tv import coco_detector, load_pretrained
from convsight.detection.tv_build import (
    MODELS,
    calibrate_norms_,
    coco_categories,
    coco_enum,
    coco_names,
)
from convsight.errors import ConfigError, WeightsError
from convsight.structures import Target
from convsight.weights import hub_cache_file

from .conftest import adam_steps, scene_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets on a busy 2-core machine
FRCNN, SSDLITE = "tv:fasterrcnn_mobilenet_v3_large_320_fpn", "tv:ssdlite320_mobilenet_v3_large"


def small_sampling(model):  # type: ignore[no-untyped-def]
    """Faster R-CNN with torchvision's training sample sizes cut down (2000 proposals and 512 RoIs an
    image cost ~25 GFLOP a training step here; the maths tested does not depend on how many)."""
    if hasattr(model.tv, "rpn"):
        model.tv.rpn._pre_nms_top_n = {"training": 200, "testing": 100}
        model.tv.rpn._post_nms_top_n = {"training": 100, "testing": 50}
        model.tv.roi_heads.fg_bg_sampler.batch_size_per_image = 64
    return model


def random_coco(arch: str, size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """``arch`` with the COCO head, random weights, norms calibrated (non-degenerate scores), eval mode."""
    torch.manual_seed(0)
    model = coco_detector(arch, image_size=size)
    calibrate_norms_(model.tv, list(torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))))
    return model.eval()


def torchvision_reference(model, size: tuple[int, int]):  # type: ignore[no-untyped-def]
    """torchvision's own COCO build of ``model``'s architecture holding ``model``'s weights (handed to its
    builder instead of a download), its transform set to ``size``: at that size its resize is the identity."""
    spec = model.config.tv_model
    with mock.patch.object(WeightsEnum, "get_state_dict", lambda *a, **k: model.tv.state_dict()):
        ref = getattr(tvd, spec.name)(weights=coco_enum(spec)).eval()
    ref.transform.min_size, ref.transform.max_size = (min(size),), max(size)
    if ref.transform.fixed_size is not None:  # SSD's: (width, height), torchvision's order there
        ref.transform.fixed_size = (size[1], size[0])
    return ref


@pytest.mark.parametrize(("arch", "score"), [(FRCNN, 0.005), (SSDLITE, 0.05)])
def test_detections_are_torchvisions_in_input_pixels_with_coco_names(arch, score):
    size = (160, 224)  # not square: a swapped H / W shows
    model = random_coco(arch, size)
    ref = torchvision_reference(model, size)
    pp = PostprocessConfig(score_threshold=score, iou_threshold=0.3, topk=25, pre_nms_topk=60, min_size=0.0)
    owner, spec = (ref.roi_heads if "rcnn" in arch else ref), model.config.tv_model
    owner.score_thresh, owner.nms_thresh, owner.detections_per_img = score, 0.3, 25
    if spec.family != "rcnn":
        owner.topk_candidates = 60
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = model(image, postprocess=pp).detections[0]
        theirs = ref(list(image))[0]
    names, cats = coco_names(), coco_categories()
    kept = [i for i, t in enumerate(theirs["labels"].tolist()) if cats[t] != "N/A"]
    assert 5 <= len(ours) == len(kept) <= 25
    assert [names[k] for k in ours.labels.tolist()] == [cats[theirs["labels"][i]] for i in kept]  # 0-based, named
    torch.testing.assert_close(ours.boxes, theirs["boxes"][kept], atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.scores, theirs["scores"][kept], atol=1e-6, rtol=0)
    b = ours.boxes  # xyxy, pixels of the 160 x 224 input
    assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all() and b[:, 2].max() <= 224 and b[:, 3].max() <= 160
    assert (ours.scores > score).all()
    mine = model.tv.roi_heads if "rcnn" in arch else model.tv  # the call's thresholds were for that call only
    assert (mine.score_thresh, mine.nms_thresh, mine.detections_per_img) == (
        spec.postprocess.score_threshold, spec.postprocess.iou_threshold, spec.postprocess.topk)


@pytest.mark.parametrize("arch", ["tv:fasterrcnn_resnet50_fpn_v2", "tv:fasterrcnn_mobilenet_v3_large_fpn",
                                  "tv:retinanet_resnet50_fpn_v2", "tv:fcos_resnet50_fpn", "tv:ssd300_vgg16"])
def test_the_other_five_keep_the_contract(arch):
    """What test_contract.py checks on the two light ones, once for each of the other five (each
    family's thresholds live elsewhere in torchvision: roi_heads, RetinaNet / FCOS, SSD)."""
    size = (300, 300) if "ssd300" in arch else (96, 128)
    torch.manual_seed(0)
    model = small_sampling(build_detector(arch, 2, image_size=size, backbone_weights=None)).eval()
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(4))
    targets = [Target(torch.tensor([[10.0, 20.0, 60.0, 80.0]]), torch.tensor([1])), Target(torch.zeros(0, 4),
                                                                                           torch.zeros(0, dtype=torch.int64))]
    everything = PostprocessConfig(score_threshold=0.0, iou_threshold=0.5, topk=40, pre_nms_topk=100, min_size=0.0)
    with torch.no_grad():
        out = model(images, targets, postprocess=everything)
    assert len(out.detections) == 2 and out.losses and all(torch.isfinite(v) for v in out.losses.values())
    for d in out.detections:
        assert 0 < len(d) <= 40 and ((d.labels >= 0) & (d.labels < 2)).all()
        assert (d.boxes >= 0).all() and (d.boxes[:, 2] <= size[1]).all() and (d.boxes[:, 3] <= size[0]).all()
    owner = model.tv.roi_heads if "rcnn" in arch else model.tv
    assert owner.detections_per_img == model.postprocess.topk  # restored after the call
    train = model.train()(images, targets)
    assert set(train.losses) == set(out.losses) and train.loss.requires_grad


def _coco_targets(size: tuple[int, int]) -> list[Target]:
    person, cup = coco_names().index("person"), coco_names().index("cup")
    return [Target(torch.tensor([[10.0, 12.0, 90.0, 120.0], [100.0, 40.0, 150.0, 90.0]]), torch.tensor([person, cup])),
            Target(torch.tensor([[30.0, 30.0, 80.0, 70.0]]), torch.tensor([cup]))]


def test_eval_mode_loss_is_torchvisions_training_loss_and_changes_nothing():
    size = (128, 160)
    model = small_sampling(random_coco(FRCNN, size))  # FrozenBatchNorm2d only: same layers in both modes
    images, targets = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1)), _coco_targets(size)
    rng = torch.get_rng_state()
    with torch.no_grad():
        first, second = model(images, targets), model(images, targets)
    assert torch.equal(torch.get_rng_state(), rng) and not model.tv.training
    assert first.losses.keys() == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.equal(first.losses[k], second.losses[k]) for k in first.losses)
    assert len(first.detections) == 2
    tv_targets = [{"boxes": t.boxes, "labels": model.tv_of_label[t.labels]} for t in targets]  # COCO ids
    assert tv_targets[0]["labels"].tolist() == [1, 47]  # person, cup
    torch.manual_seed(0)  # the wrapper's fixed sampling seed
    with torch.no_grad():
        reference = model.tv.train()(list(images), tv_targets)
    for k, v in reference.items():
        torch.testing.assert_close(first.losses[k], v)


def test_eval_mode_loss_leaves_batchnorm_statistics_alone():
    model = random_coco(SSDLITE, (64, 64))  # SSDlite trains its BatchNorm
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    targets = [Target(t.boxes / 2.5, t.labels) for t in _coco_targets((160, 160))]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model(images, targets)
    assert set(out.losses) == {"bbox_regression", "classification"} and len(out.detections) == 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.train()(images, targets)  # the training pass, by contrast, moves them
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if "running_mean" in k)


@pytest.mark.parametrize(("arch", "freeze", "lr"), [(SSDLITE, False, 1e-3), (FRCNN, True, 1e-2)])
def test_a_new_class_head_learns_tiny_scenes(arch, freeze, lr):
    images, targets = scene_batch((64, 64), 4, seed=5, min_objects=1, max_objects=2, min_size=14, background="plain")
    torch.manual_seed(0)
    model = small_sampling(build_detector(arch, 3, image_size=(64, 64), backbone_weights=None, freeze_backbone=freeze))
    assert model.tv_of_label.tolist() == [1, 2, 3]  # torchvision's fine-tuning convention: 0 is background
    losses = [h["loss"] for h in adam_steps(model, images, targets, steps=6, lr=lr)]
    assert min(losses[-2:]) < 0.7 * losses[0], losses  # measured: SSDlite 13.8 -> 6.3, Faster R-CNN 2.4 -> 1.1


@pytest.fixture
def hub(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """An empty torch hub cache; file-name hash checks off (the fakes here are not torchvision's files)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr("convsight.weights.verify_name_hash", lambda path: None)
    monkeypatch.delenv("CONVSIGHT_ALLOW_DOWNLOAD", raising=False)
    return tmp_path


def _probe(model) -> float:  # type: ignore[no-untyped-def]
    return float(model.tv.head.regression_head.module_list[0][1].weight.detach().flatten()[0])


def test_weights_come_from_the_file_then_the_cache_then_a_download(hub, monkeypatch):
    spec = MODELS[SSDLITE.removeprefix("tv:")]
    base = coco_detector(SSDLITE).tv.state_dict()
    shifted = lambda d: {k: v + d if v.is_floating_point() else v for k, v in base.items()}
    cached = hub_cache_file(coco_enum(spec))

    with pytest.raises(WeightsError) as err:  # nothing anywhere: one line saying where it looked and what to do
        load_pretrained(SSDLITE)
    message = str(err.value)
    assert "\n" not in message and str(cached.parent) in message and "CONVSIGHT_ALLOW_DOWNLOAD=1" in message
    assert "--weights" in message and cached.name in message

    monkeypatch.setenv("CONVSIGHT_ALLOW_DOWNLOAD", "1")  # a download, when allowed (torchvision's own fetch)
    with mock.patch.object(WeightsEnum, "get_state_dict", lambda *a, **k: shifted(3.0)):
        model, names, path = load_pretrained(SSDLITE)
    assert _probe(model) == pytest.approx(_probe_of(shifted(3.0)))
    assert names == coco_names() and path == cached
    with mock.patch.object(WeightsEnum, "get_state_dict", mock.Mock(side_effect=OSError("no route to host"))), \
            pytest.raises(WeightsError, match="downloading .* failed .*no route to host"):
        load_pretrained(SSDLITE)
    monkeypatch.delenv("CONVSIGHT_ALLOW_DOWNLOAD")

    cached.parent.mkdir(parents=True)
    torch.save(shifted(1.0), cached)  # torchvision's file in the cache
    model, _, path = load_pretrained(SSDLITE)
    assert path == cached and _probe(model) == pytest.approx(_probe_of(shifted(1.0)))

    own = hub / "mine.pth"
    torch.save(shifted(2.0), own)  # a file named with --weights beats the cache
    model, _, path = load_pretrained(SSDLITE, own)
    assert path == own and _probe(model) == pytest.approx(_probe_of(shifted(2.0)))

    model, names, path = load_pretrained(SSDLITE, "random")  # never a fallback: asked for by name
    assert path == Path("random") and len(names) == 80 and not model.training


def _probe_of(state) -> float:  # type: ignore[no-untyped-def]
    return float(state["head.regression_head.module_list.0.1.weight"].flatten()[0])


def test_a_state_dict_of_another_model_is_one_line(hub):
    bad = hub / "other.pth"
    torch.save({"w": torch.zeros(2)}, bad)
    with pytest.raises(WeightsError, match="91 COCO classes is expected") as err:
        load_pretrained(SSDLITE, bad)
    assert "\n" not in str(err.value)


def test_a_fine_tuned_detector_file_loads_through_the_hook(tmp_path):
    from convsight.detection.inference import load_for_inference
    from convsight.detection.serialize import save_detector

    torch.manual_seed(0)
    model = build_detector(SSDLITE, 2, image_size=(96, 96), backbone_weights=None).eval()
    path = save_detector(model, tmp_path / "ft.safetensors", ["cat", "dog"])
    loaded, names, where = load_for_inference(path, "cpu", arch=SSDLITE, optimize=False)
    assert names == ("cat", "dog") and where == path and loaded.config == model.config
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        a, b = model(x).detections[0], loaded(x).detections[0]
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
    with pytest.raises(WeightsError, match="not 'tv:fasterrcnn"):
        load_pretrained(FRCNN, path)


def test_fine_tuning_starts_from_coco_but_the_class_predictor(hub):
    spec = MODELS[FRCNN.removeprefix("tv:")]
    torch.manual_seed(1)
    coco = coco_detector(FRCNN).tv.state_dict()
    cached = hub_cache_file(coco_enum(spec))
    cached.parent.mkdir(parents=True)
    torch.save(coco, cached)
    model = build_detector(FRCNN, 3, image_size=(128, 128))  # backbone_weights "coco": the default
    state = model.tv.state_dict()
    new = [k for k in state if k.startswith("roi_heads.box_predictor.")]
    assert state["roi_heads.box_predictor.cls_score.weight"].shape == (4, 1024)  # 3 classes + background
    assert all(torch.equal(state[k], coco[k]) for k in state if k not in new)
    assert model.weights_source == f"coco:{cached}"
    frozen = {n for n, p in model.tv.named_parameters() if not p.requires_grad}  # torchvision's 3 trainable stages
    assert frozen and all(n.startswith("backbone.body.") for n in frozen)


def test_no_start_anywhere_is_one_line_naming_the_way_out(hub):
    with pytest.raises(WeightsError) as err:
        build_detector(FRCNN, 3, image_size=(128, 128))
    message = str(err.value)
    assert "\n" not in message and "COCO weights" in message and "ImageNet" in message
    assert "--backbone-weights none" in message


@pytest.mark.parametrize(("override", "match"), [
    ({"backbone": "resnet18"}, "part of this architecture"),
    ({"trainable_backbone_layers": 9}, "trainable_backbone_layers"),
])
def test_config_mistakes_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        build_detector(FRCNN, 3, backbone_weights=None, **override)


def test_architecture_limits_are_config_errors():
    with pytest.raises(ConfigError, match="300x300"):
        build_detector("tv:ssd300_vgg16", 3, image_size=(256, 256), backbone_weights=None)
    with pytest.raises(ConfigError, match="no ImageNet start"):
        build_detector(SSDLITE, 3, backbone_weights="imagenet")
    with pytest.raises(ConfigError, match="COCO head predicts 80"):
        build_detector(SSDLITE, 3, coco_head=True, backbone_weights=None)


# ---- real photos, where torchvision's COCO weights are in the local torch cache -------------------


@pytest.mark.parametrize("spec", list(MODELS.values()), ids=lambda s: s.name)
@pytest.mark.parametrize(("photo", "wanted"), [("astronaut", "person"), ("coffee", "cup")])
def test_real_photo_with_cached_coco_weights(spec, photo, wanted):
    cached = hub_cache_file(coco_enum(spec))
    if not cached.is_file():
        pytest.skip(f"{spec.arch}: COCO weights not in the local torch cache ({cached}); offline, nothing to run")
    import skimage.data

    from convsight.detection import engine

    model, names, _ = load_pretrained(spec.arch)
    image: np.ndarray = getattr(skimage.data, photo)()
    det = engine.predict(model, [image], score_threshold=0.5)[0]
    found = {names[k] for k in det.labels.tolist()}
    assert wanted in found, f"{spec.arch} on {photo}: {sorted(found)}"
