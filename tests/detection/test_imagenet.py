"""imagenet_localize / imagenet_sliding without the photos: the maths on tiny tensors (imagenet_ops),
the super-classes against torchvision's own class list, configs, the detectors on the tiny backbone,
and where the weights come from. On the real photos: test_imagenet_photos.py."""

from __future__ import annotations

import pytest
import torch

from convsight.detection.build import build_detector
from convsight.detection.imagenet import PIP_INSTALL, ImagenetDetector, load_pretrained
from convsight.detection.imagenet_groups import (
    GROUP_NAMES,
    SUPER_CLASSES,
    group_matrix,
    imagenet_class_names,
)
from convsight.detection.imagenet_ops import (
    cam_box,
    class_activation_maps,
    fit_cells,
    greedy_merge,
    intersection_over_smaller,
    short_side_size,
    window_boxes,
    window_logits,
)
from convsight.errors import ConfigError, WeightsError
from convsight.structures import Target

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---- class activation maps ---------------------------------------------------------------------


def test_the_mean_of_a_class_activation_map_plus_bias_is_the_classifiers_logit() -> None:
    """Zhou et al.'s identity: global average pooling then the linear layer = the map's mean + bias."""
    feats, w, b = torch.randn(8, 5, 7), torch.randn(3, 8), torch.randn(3)
    maps = class_activation_maps(feats, w)  # (3, 5, 7)
    assert maps.shape == (3, 5, 7)
    assert torch.allclose(maps.mean(dim=(1, 2)) + b, w @ feats.mean(dim=(1, 2)) + b, atol=1e-5)


def test_cam_box_boxes_the_largest_region_above_the_threshold() -> None:
    cam = torch.zeros(40, 60)
    cam[5:15, 10:30] = 1.0  # 200 px
    cam[30:35, 50:55] = 1.0  # 25 px: smaller, left out
    assert cam_box(cam, 0.2).tolist() == [10.0, 5.0, 30.0, 15.0]
    assert cam_box(cam - 7.0, 0.2).tolist() == [10.0, 5.0, 30.0, 15.0]  # min-max: a shift changes nothing


def test_cam_threshold_is_a_fraction_of_the_maps_range() -> None:
    cam = torch.zeros(20, 40)
    cam[0:10, 0:10] = 1.0
    cam[0:10, 10:30] = 0.5  # half the range
    assert cam_box(cam, 0.4).tolist() == [0.0, 0.0, 30.0, 10.0]
    assert cam_box(cam, 0.6).tolist() == [0.0, 0.0, 10.0, 10.0]
    assert cam_box(torch.full((20, 40), 3.0), 0.2).tolist() == [0.0, 0.0, 40.0, 20.0]  # no evidence anywhere


# ---- the convolutional sliding window ------------------------------------------------------------


def test_window_logits_are_the_classifier_on_each_windows_average_feature() -> None:
    feats, w, b = torch.randn(16, 6, 9), torch.randn(4, 16), torch.randn(4)
    out = window_logits(feats, w, b, (3, 4))
    assert out.shape == (4, 4, 6)  # (K, 6 - 3 + 1, 9 - 4 + 1)
    for i, j in ((0, 0), (2, 5), (3, 1)):
        crop = feats[:, i : i + 3, j : j + 4].mean(dim=(1, 2))  # what the classifier sees of that window alone
        assert torch.allclose(out[:, i, j], w @ crop + b, atol=1e-5)


def test_window_boxes_are_in_the_pixels_of_the_image_before_the_resize() -> None:
    boxes = window_boxes((2, 3), (7, 7), 32, (0.5, 2.0))  # resized image: 2x taller, half as wide
    assert boxes.shape == (6, 4)
    assert boxes[0].tolist() == [0.0, 0.0, 448.0, 112.0]  # 224 x 224 resized px -> 448 wide, 112 high
    assert boxes[1].tolist() == [64.0, 0.0, 512.0, 112.0]  # next column: one 32-px cell to the right
    assert boxes[3].tolist() == [0.0, 16.0, 448.0, 128.0]  # row-major: the second row starts here


def test_windows_never_exceed_the_feature_map_and_the_pyramid_keeps_the_aspect() -> None:
    assert fit_cells((7, 7), (7, 10)) == (7, 7) and fit_cells((7, 7), (5, 9)) == (5, 7)
    assert short_side_size((427, 640), 224) == (224, 336)
    assert short_side_size((600, 512), 224) == (262, 224)


def test_intersection_over_smaller_is_one_for_a_nested_window() -> None:
    big = torch.tensor([0.0, 0.0, 100.0, 100.0])
    others = torch.tensor([[10.0, 10.0, 30.0, 30.0], [50.0, 0.0, 150.0, 100.0], [200.0, 0.0, 210.0, 10.0]])
    assert intersection_over_smaller(big, others).tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_greedy_merge_grows_over_confident_windows_and_only_suppresses_weak_ones() -> None:
    boxes = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],  # 0: best, class 0
        [5.0, 0.0, 20.0, 10.0],  # 1: half inside 0, confident -> merged: 0 grows to x=20
        [10.0, 0.0, 24.0, 10.0],  # 2: touches 0, overlaps it only once it has grown: merged too -> x=24
        [0.0, 0.0, 10.0, 60.0],  # 3: contains 0 but weak (0.3): suppressed, 0 does not grow down
        [0.0, 0.0, 10.0, 10.0],  # 4: class 1 on the same spot: kept, classes never merge
        [100.0, 100.0, 120.0, 120.0],  # 5: class 0 elsewhere: kept
    ])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.3, 0.6, 0.55])
    labels = torch.tensor([0, 0, 0, 0, 1, 0])
    keep, merged = greedy_merge(boxes, scores, labels, overlap=0.5, merge_score=0.5)
    assert keep.tolist() == [0, 4, 5]
    assert merged.tolist() == [[0.0, 0.0, 24.0, 10.0], [0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 120.0, 120.0]]
    keep, _ = greedy_merge(boxes[:0], scores[:0], labels[:0], 0.5, 0.5)
    assert keep.numel() == 0


# ---- super-classes --------------------------------------------------------------------------------


def test_super_class_ranges_hold_the_classes_their_comments_name() -> None:
    """Checked against torchvision's category list, not against this code: a shifted range fails."""
    names = imagenet_class_names()
    assert len(names) == 1000
    expected = {"dog": ("Chihuahua", "Mexican hairless"), "cat": ("tabby", "Egyptian cat"),
                "big cat": ("cougar", "cheetah"), "bear": ("brown bear", "sloth bear"),
                "monkey": ("orangutan", "squirrel monkey"), "insect": ("tiger beetle", "lycaenid")}
    for group, (first, last) in expected.items():
        members = SUPER_CLASSES[group]
        assert (names[members[0]], names[members[-1]]) == (first, last), group
    spot = {"cup": {"coffee mug", "espresso", "cup"}, "helmet": {"crash helmet", "football helmet"},
            "flower": {"daisy", "yellow lady's slipper"},
            "building": {"bell cote", "castle", "church", "dome", "monastery", "mosque", "palace", "stupa"},
            "clothing": {"academic gown", "bow tie", "military uniform", "suit", "Windsor tie"}}
    for group, want in spot.items():
        assert {names[i] for i in SUPER_CLASSES[group]} == want, group
    assert {"cock", "great grey owl", "black swan", "albatross"} <= {names[i] for i in SUPER_CLASSES["bird"]}
    assert "sports car" in {names[i] for i in SUPER_CLASSES["car"]}


def test_super_classes_are_disjoint_and_their_probabilities_are_sums() -> None:
    all_members = [i for members in SUPER_CLASSES.values() for i in members]
    assert len(all_members) == len(set(all_members)) and min(all_members) >= 0 and max(all_members) < 1000
    model = build_detector("imagenet_localize", len(GROUP_NAMES), backbone="tiny", backbone_weights=None, group=True)
    probs = torch.randn(5, 1000).softmax(-1)
    grouped = model.class_probs(probs.log())  # softmax of log-probabilities = the probabilities
    cat = list(SUPER_CLASSES["cat"])
    assert torch.allclose(grouped[:, GROUP_NAMES.index("cat")], probs[:, cat].sum(1), atol=1e-6)
    assert (grouped.sum(1) <= 1 + 1e-5).all() and torch.equal(group_matrix().sum(0).clamp(max=1), group_matrix().sum(0))


# ---- configs and the detectors on the tiny backbone ----------------------------------------------


@pytest.mark.parametrize("arch, bad, message", [
    ("imagenet_localize", {"cam_threshold": 1.0}, "cam_threshold"),
    ("imagenet_localize", {"top_classes": 0}, "top_classes"),
    ("imagenet_localize", {"cam_scales": ()}, "cam_scales"),
    ("imagenet_sliding", {"window": 100}, "multiple of 32"),
    ("imagenet_sliding", {"pyramid": (16,)}, "pyramid"),
    ("imagenet_sliding", {"input_sides": (224, 1000)}, "input_sides"),
])
def test_configs_refuse_bad_values_by_name(arch: str, bad: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=f"{arch}: .*{message}"):
        build_detector(arch, 3, backbone="tiny", backbone_weights=None, **bad)


def test_super_classes_need_the_imagenet_head() -> None:
    with pytest.raises(ConfigError, match="group=true .* needs num_classes=16"):
        build_detector("imagenet_sliding", 3, backbone="tiny", backbone_weights=None, group=True)


@pytest.mark.parametrize("arch", ["imagenet_localize", "imagenet_sliding"])
def test_any_input_size_gives_boxes_in_that_images_pixels(arch: str) -> None:
    torch.manual_seed(0)
    small = {"classify_side": 64} if arch == "imagenet_localize" else {"pyramid": (64, 128)}
    model = build_detector(arch, 5, backbone="tiny", backbone_weights=None, **small).eval()
    assert isinstance(model, ImagenetDetector) and model.any_size
    for h, w in ((70, 130), (200, 90)):
        det = model(torch.rand(2, 3, h, w), postprocess=model.postprocess.with_thresholds(0.0)).detections
        assert len(det) == 2 and all(len(d) for d in det)
        for d in det:
            assert (d.boxes[:, 0] >= 0).all() and (d.boxes[:, 2] <= w).all() and (d.boxes[:, 3] <= h).all()
            assert (d.boxes[:, 2] > d.boxes[:, 0]).all() and ((d.labels >= 0) & (d.labels < 5)).all()
    if arch == "imagenet_localize":  # one box per class, the top_classes best
        assert len(det[0]) == min(5, model.config.top_classes) and len(set(det[0].labels.tolist())) == len(det[0])


def test_the_image_loss_ignores_images_without_objects_and_teaches_the_classes() -> None:
    torch.manual_seed(0)
    model = build_detector("imagenet_localize", 3, backbone="tiny", backbone_weights=None).train()
    images = torch.rand(2, 3, 64, 64)
    one = [Target(torch.tensor([[0.0, 0.0, 30.0, 30.0], [5.0, 5.0, 60.0, 60.0]]), torch.tensor([2, 0]))]
    empty = Target(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    model.eval()  # BatchNorm statistics out of the comparison
    with torch.no_grad():
        alone = model(images[:1], one).losses["cls"]
        with_empty = model(images, [one[0], empty]).losses["cls"]
    assert torch.allclose(alone, with_empty, atol=1e-5)
    model.train()
    opt = torch.optim.Adam(model.classifier.parameters(), lr=0.02)
    first = None
    for _ in range(15):
        loss = model(images[:1], one).losses["cls"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.9 * first
    probs = model.eval().class_probs(model.classifier(model.features(images[:1]).mean(dim=(2, 3))))[0]
    assert probs[0] + probs[2] > 0.8  # the two classes present share the probability


# ---- weights --------------------------------------------------------------------------------------


def test_without_the_weights_package_the_error_names_the_pip_command(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from convsight import weights

    monkeypatch.setattr(weights, "shipped_file", lambda name: None)
    monkeypatch.setattr(weights, "hub_cache_file", lambda w: tmp_path / "nothing.pth")
    monkeypatch.delenv(weights.ALLOW_DOWNLOAD_ENV, raising=False)
    with pytest.raises(weights.WeightsUnavailable) as e:
        load_pretrained("imagenet_localize")
    assert PIP_INSTALL in str(e.value) and "\n" not in str(e.value)


def test_the_cli_says_so_in_one_line_and_exits_2(cli, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image

    from convsight import weights

    monkeypatch.setattr(weights, "shipped_file", lambda name: None)
    monkeypatch.setattr(weights, "hub_cache_file", lambda w: tmp_path / "nothing.pth")
    monkeypatch.delenv(weights.ALLOW_DOWNLOAD_ENV, raising=False)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    r = cli("detect", "predict", tmp_path / "a.png", "--arch", "imagenet-sliding", "--out", tmp_path / "out")
    assert r.code == 2 and PIP_INSTALL in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_weights_files_that_are_not_the_classifier_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="not a convsight detector file"):
        load_pretrained("imagenet_sliding", tmp_path / "other.safetensors")
    torch.save({"features.0.0.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="other.pth: not MobileNetV2 ImageNet weights"):
        load_pretrained("imagenet_sliding", tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="unknown option.*nope"):
        load_pretrained("imagenet_localize", nope=1)
