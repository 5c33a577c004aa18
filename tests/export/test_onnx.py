"""ONNX export: the shipped detectors and a face embedder give the eager model's outputs in onnxruntime."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convsight.detection.base import Detector, DetectorConfig
from convsight.detection.files import shipped_detector
from convsight.detection.serialize import load_detector
from convsight.errors import WeightsError
from convsight.export.onnx import (DETECTOR_FORMAT, ExportError, detector_graph, export_detector, export_embedder,
                                   postprocess_from_metadata, read_onnx_metadata)
from convsight.export.runtime import OnnxDetector, OnnxEmbedder
from convsight.faces.types import FaceEmbedder
from convsight.io.images import to_tensor
from convsight.io.synthetic import SynthConfig, render_scene

ARCHS = ("yolo", "ssd", "faster_rcnn")
TOL = 1e-4


@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    """(3, 3, 256, 256) synthetic scenes in [0, 1]."""
    cfg = SynthConfig(image_size=(256, 256))
    return torch.stack([to_tensor(render_scene(cfg, 7, i).image) for i in range(3)])


@pytest.fixture(scope="module", params=ARCHS)
def exported(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    arch = request.param
    model, names = load_detector(shipped_detector(arch))
    path = export_detector(model, names, tmp_path_factory.mktemp(arch) / f"{arch}.onnx")
    return model, names, path


def test_detections_match_the_eager_detector(exported, scenes):
    model, _, path = exported
    with torch.no_grad():
        eager = model.eval()(scenes).detections
    ort = OnnxDetector(path)(scenes)
    assert len(ort) == len(eager) == 3
    assert sum(len(d) for d in eager) > 0  # the comparison is about something
    for e, o in zip(eager, ort, strict=True):
        assert len(o) == len(e)
        assert torch.equal(o.labels, e.labels)
        torch.testing.assert_close(o.boxes, e.boxes, atol=TOL, rtol=0)
        torch.testing.assert_close(o.scores, e.scores, atol=TOL, rtol=0)


def test_raw_outputs_match_the_graph_module(exported, scenes):
    model, _, path = exported
    det = OnnxDetector(path)
    x = scenes if det.batch is None else scenes[:1]  # yolo/ssd: one run over a batch of 3 (dynamic batch)
    with torch.no_grad():
        boxes, scores = detector_graph(model)(x)
    ort_boxes, ort_scores = det.raw(x)
    assert ort_boxes.shape == tuple(boxes.shape) and ort_scores.shape == tuple(scores.shape)
    # Raw boxes are not clipped yet: an untrained-looking prior can decode to ~1000 px, where 1 ulp of
    # float32 is 6e-5, so allow float32 rounding relative to the size as well.
    torch.testing.assert_close(torch.from_numpy(ort_boxes), boxes, atol=TOL, rtol=1e-6)
    torch.testing.assert_close(torch.from_numpy(ort_scores), scores, atol=TOL, rtol=0)


def test_metadata_holds_what_inference_needs(exported):
    model, names, path = exported
    meta = read_onnx_metadata(path, DETECTOR_FORMAT)
    assert meta["arch"] == model.arch
    assert tuple(json.loads(meta["class_names"])) == names
    assert tuple(json.loads(meta["image_size"])) == model.image_size
    assert postprocess_from_metadata(meta) == model.postprocess
    assert meta["batch"] == ("1" if model.arch == "faster_rcnn" else "dynamic")


def test_changed_thresholds_apply_to_the_onnx_detector(exported, scenes):
    model, _, path = exported
    strict = dataclasses.replace(model.postprocess, score_threshold=0.5, topk=3)
    det = OnnxDetector(path)
    det.postprocess = strict
    model.postprocess = strict
    try:
        with torch.no_grad():
            eager = model(scenes[:1]).detections[0]
    finally:
        model.postprocess = model.config.postprocess
    onnx_dets = det(scenes[:1])[0]
    assert len(onnx_dets) == len(eager) <= 3
    assert bool((onnx_dets.scores > 0.5).all())
    torch.testing.assert_close(onnx_dets.boxes, eager.boxes, atol=TOL, rtol=0)


def test_wrong_image_size_is_refused(exported):
    with pytest.raises(ValueError, match="expected images"):
        OnnxDetector(exported[2]).raw(torch.zeros(1, 3, 64, 64))


def test_other_architectures_are_refused():
    class Stub(Detector):
        arch = "sliding_window"
        has_backbone = False

    with pytest.raises(ExportError, match="supports yolo, ssd, faster_rcnn"):
        detector_graph(Stub(1, DetectorConfig()))


class TinyEmbedder(FaceEmbedder):
    embedder_id, dim, chip_size, alignment = "tiny-test", 16, 32, "none"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, self.dim)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(chips))).mean(dim=(2, 3))  # (B, 8)
        return F.normalize(self.fc(x), dim=1)


def test_embedder_parity_over_batch_sizes(tmp_path):
    model = TinyEmbedder().eval()
    path = export_embedder(model, tmp_path / "emb.onnx")
    ort = OnnxEmbedder(path)
    assert (ort.embedder_id, ort.dim, ort.chip_size) == ("tiny-test", 16, 32)
    for b in (1, 5):  # dynamic batch: exported with 2
        chips = torch.rand(b, 3, 32, 32)
        with torch.no_grad():
            eager = model(chips)
        got = torch.from_numpy(ort(chips))
        assert got.shape == (b, 16)
        torch.testing.assert_close(got, eager, atol=TOL, rtol=0)


def test_embedder_without_declared_size_is_refused(tmp_path):
    model = TinyEmbedder()
    model.chip_size = 0
    with pytest.raises(ExportError, match="chip_size"):
        export_embedder(model, tmp_path / "x.onnx")


def test_read_metadata_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(WeightsError, match="not a readable ONNX file"):
        read_onnx_metadata(bad)
    with pytest.raises(WeightsError, match="no such ONNX file"):
        read_onnx_metadata(tmp_path / "missing.onnx")
    emb = export_embedder(TinyEmbedder().eval(), tmp_path / "emb.onnx")
    with pytest.raises(WeightsError, match="not a convsight ONNX file"):
        OnnxDetector(emb)  # an embedder file is not a detector file


# ---- the dlib embedder on real aligned face chips ---------------------------------------------------
# README ("Export (ONNX)"): "tests/export asserts equal ... embeddings within 1e-4". Measured here on
# faces, not noise: the two portraits that ship offline (scikit-image's astronaut, matplotlib's
# grace_hopper.jpg), plus a mirrored, darker copy of each, detected and aligned by convsight's own
# face pipeline (MTCNN landmarks -> dlib's 150 px chip), as `faces verify` would see them. Measured
# max abs difference: 2.4e-7.


@pytest.fixture(scope="module")
def dlib_face_chips():  # type: ignore[no-untyped-def]
    """(port, chips (4, 150, 150, 3) uint8): the real dlib port and aligned chips of two people."""
    from convsight.faces.pipeline import FacePipeline
    from tests.faces.test_dlib_port import aligned_portrait_chips

    try:
        pipe = FacePipeline.pretrained()  # the default cache, converted from the installed .dat on first use
    except WeightsError as e:
        pytest.skip(f"a face model file is absent: {e}")
    return pipe.embedder, aligned_portrait_chips(pipe)


def test_dlib_embedder_onnx_parity_on_aligned_faces(dlib_face_chips, tmp_path):
    from convsight.faces.pipeline import chips_to_tensor
    from convsight.faces.verification import default_threshold

    port, chips = dlib_face_chips
    path = export_embedder(port, tmp_path / "dlib.onnx")
    ort = OnnxEmbedder(path)
    assert (ort.embedder_id, ort.dim, ort.chip_size) == (port.embedder_id, 128, 150)
    x = chips_to_tensor(chips)  # (4, 3, 150, 150)
    with torch.no_grad():
        eager = port(x)  # (4, 128)
    for batch in (x, x[:1]):  # the whole set at once, and batch 1 (dynamic batch)
        got = torch.from_numpy(ort(batch))
        torch.testing.assert_close(got, eager[:len(batch)], atol=TOL, rtol=0)
    got = torch.from_numpy(ort(x))
    # The comparison is about faces: at the port's own threshold (0.435) each copy matches its person
    # and not the other one, in both runtimes alike (measured: same 0.12-0.15, different 0.47-0.48).
    limit = default_threshold(port).value
    d_eager, d_onnx = torch.cdist(eager, eager), torch.cdist(got, got)
    for d in (d_eager, d_onnx):
        assert float(d[0, 1]) < limit and float(d[2, 3]) < limit and float(d[:2, 2:].min()) > limit
    torch.testing.assert_close(d_onnx, d_eager, atol=TOL, rtol=0)
