"""ONNX export of torchvision's detectors (``tv:*``): one two-stage and one single-stage model, random
weights, checked in onnxruntime against the eager model; and the order-free parity measure they need."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from convsight.detection.serialize import save_detector
from convsight.detection.tv import coco_detector
from convsight.detection.tv_build import calibrate_norms_, coco_names
from convsight.export.runtime import OnnxDetector, detections_max_diff
from convsight.structures import Detections

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets on a busy 2-core machine
TOL = 1e-3  # the CLI's own tolerance (cli/export.TOLERANCE)


def test_faster_rcnn_exports_with_parity(cli, tmp_path):
    """Two-stage: RPN, RoI heads and torchvision's NMS in the graph; a saved COCO-head detector whose
    score threshold lets random weights through (at torchvision's 0.05 nothing passes, nothing is compared)."""
    arch, size = "tv:fasterrcnn_mobilenet_v3_large_320_fpn", (192, 192)
    torch.manual_seed(0)
    model = coco_detector(arch, image_size=size)
    calibrate_norms_(model.tv, list(torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))))
    model.config = dataclasses.replace(model.config, postprocess=dataclasses.replace(model.postprocess, score_threshold=0.005))
    model.postprocess = model.config.postprocess
    weights = save_detector(model.eval(), tmp_path / "frcnn.safetensors", coco_names())
    out = tmp_path / "frcnn.onnx"
    r = cli("export", "onnx", "--weights", weights, "--arch", arch, "-o", out, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["batch"] == 1 and doc["max_abs_diff"] <= TOL and doc["detections_checked"] >= 10
    onnx = OnnxDetector(out)
    assert onnx.outputs == ("boxes", "scores", "labels") and onnx.class_names == coco_names()
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(5))  # not the image it was checked on
    with torch.no_grad():
        eager = model(images).detections
    assert sum(map(len, eager)) >= 10 and detections_max_diff(eager, onnx(images)) <= TOL


def test_ssdlite_exports_with_parity_from_random_weights(cli, tmp_path):
    """Single-stage, through ``--weights random`` (SSDlite's own threshold, 0.001, lets random scores through)."""
    out = tmp_path / "ssdlite.onnx"
    r = cli("export", "onnx", "--weights", "random", "--arch", "tv:ssdlite320_mobilenet_v3_large", "-o", out, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["max_abs_diff"] <= TOL and doc["detections_checked"] >= 50 and len(doc["classes"]) == 80
    assert out.is_file() and OnnxDetector(out).image_size == (320, 320)


def _dets(rows: list[tuple[float, float, float, float, float, int]]) -> Detections:
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    return Detections(t[:, :4], t[:, 4], t[:, 5].long())


def test_parity_ignores_order_but_not_content():
    a = _dets([(0, 0, 10, 10, 0.5, 1), (5, 5, 20, 20, 0.5, 1), (1, 1, 4, 4, 0.9, 0)])
    swapped = _dets([(1, 1, 4, 4, 0.9, 0), (5, 5, 20, 20, 0.5, 1), (0, 0, 10, 10, 0.5, 1)])  # tied scores, other order
    assert detections_max_diff([a], [swapped]) == 0.0
    nudged = _dets([(0, 0, 10, 10.25, 0.5, 1), (5, 5, 20, 20, 0.5, 1), (1, 1, 4, 4, 0.9, 0)])
    assert detections_max_diff([a], [nudged]) == pytest.approx(0.25)
    relabelled = _dets([(0, 0, 10, 10, 0.5, 0), (5, 5, 20, 20, 0.5, 1), (1, 1, 4, 4, 0.9, 0)])
    assert detections_max_diff([a], [relabelled]) == float("inf")
    assert detections_max_diff([a], [a[:2]]) == float("inf")
