from __future__ import annotations

import pytest
import torch

from convsight.detection.base import PostprocessConfig
from convsight.detection.build import build_detector
from convsight.detection.config import config_from_dict, config_to_dict
from convsight.detection.serialize import load_detector, save_detector
from convsight.errors import WeightsError
from convsight.weights import save_state_dict

from .conftest import ToyConfig


def test_config_round_trip_keeps_tuples_and_nested():
    cfg = ToyConfig(image_size=(32, 48), sizes=(0.5,), postprocess=PostprocessConfig(iou_threshold=0.3))
    back = config_from_dict(ToyConfig, config_to_dict(cfg))
    assert back == cfg and isinstance(back.image_size, tuple) and isinstance(back.postprocess, PostprocessConfig)


def test_save_load_gives_same_outputs(tmp_path):
    model = build_detector("toy", 3, image_size=(32, 32))
    with torch.no_grad():
        model.box.normal_()
        model.logit.normal_()
    path = save_detector(model, tmp_path / "d.safetensors", ["a", "b", "c"])
    loaded, names = load_detector(path)
    assert names == ("a", "b", "c") and loaded.config == model.config and not loaded.training
    x = torch.rand(1, 3, 32, 32)
    a, b = model.eval()(x).detections[0], loaded(x).detections[0]
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores)


def test_wrong_files_are_weights_errors(tmp_path):
    model = build_detector("toy", 2)
    save_state_dict(model.state_dict(), tmp_path / "plain.safetensors")
    with pytest.raises(WeightsError, match="not a convsight detector file"):
        load_detector(tmp_path / "plain.safetensors")
    path = save_detector(model, tmp_path / "d.safetensors", ["a", "b"])
    with pytest.raises(WeightsError, match="holds a 'toy' detector, not 'yolo'"):
        load_detector(path, arch="yolo")
    (tmp_path / "bad.safetensors").write_bytes(path.read_bytes()[:50])
    with pytest.raises(WeightsError, match="corrupt"):
        load_detector(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError):
        save_detector(model, tmp_path / "x.safetensors", ["only one"])


def test_unknown_architecture_in_a_file_is_a_weights_error(tmp_path):
    import json

    from convsight.weights import read_weights

    state, meta = read_weights(save_detector(build_detector("toy", 2), tmp_path / "d.safetensors", ["a", "b"]))
    save_state_dict(state, tmp_path / "odd.safetensors", {**meta, "arch": "hexagon"})
    with pytest.raises(WeightsError, match="odd.safetensors: malformed detector metadata.*unknown detector architecture"):
        load_detector(tmp_path / "odd.safetensors")
    save_state_dict(state, tmp_path / "bad.safetensors", {**meta, "config": json.dumps({"colour": "red"})})
    with pytest.raises(WeightsError, match="unknown option.*colour"):
        load_detector(tmp_path / "bad.safetensors")


def test_rcnn_files_from_before_the_backbone_left_the_head_still_load(tmp_path):
    """Earlier R-CNN files stored the backbone inside the head (``head.backbone.*``)."""
    from convsight.weights import read_weights

    model = build_detector("rcnn", 2, image_size=(64, 64), warp_size=32, hidden=16).eval()
    path = save_detector(model, tmp_path / "new.safetensors", ["a", "b"])
    state, meta = read_weights(path)
    old = {("head." + k if k.startswith("backbone.") else k): v for k, v in state.items()}
    assert any(k.startswith("head.backbone.") for k in old)
    save_state_dict(old, tmp_path / "old.safetensors", meta)
    loaded, _ = load_detector(tmp_path / "old.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
