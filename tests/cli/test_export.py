"""``convsight export``: ONNX files that are checked against the eager model before they are written."""

from __future__ import annotations

import json

import pytest

from convsight.export.runtime import OnnxDetector


def test_onnx_exports_a_shipped_detector(cli, tmp_path):
    out = tmp_path / "yolo.onnx"
    r = cli("export", "onnx", "--arch", "yolo", "-o", out)
    assert r.code == 0, r.stderr
    assert "wrote" in r.stdout and "max abs difference" in " ".join(r.stderr.split())  # rich may wrap
    det = OnnxDetector(out)
    assert det.arch == "yolo" and det.batch is None


def test_onnx_json_reports_parity(cli, tmp_path):
    out = tmp_path / "frcnn.onnx"
    r = cli("export", "onnx", "--arch", "faster-rcnn", "-o", out, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["arch"] == "faster_rcnn" and doc["batch"] == 1
    assert doc["max_abs_diff"] < 1e-4 and doc["detections_checked"] > 0
    assert out.is_file()


@pytest.mark.parametrize("case", ["corrupt", "plain", "wrong_arch", "unshipped"])
def test_bad_inputs_give_one_line_and_no_file(cli, tmp_path, case):
    from safetensors.torch import save_file
    import torch

    from convsight.detection.files import shipped_detector

    out = tmp_path / "out.onnx"
    if case == "corrupt":
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"\x00not safetensors\xff" * 4)
        args = ["--weights", bad]
    elif case == "plain":
        save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
        args = ["--weights", tmp_path / "plain.safetensors"]
    elif case == "wrong_arch":
        args = ["--weights", shipped_detector("yolo"), "--arch", "ssd"]
    else:
        args = ["--arch", "sliding"]
    r = cli("export", "onnx", *args, "-o", out)
    assert r.code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("convsight: error:")
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_a_mismatching_graph_is_not_written(cli, tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    import convsight.export.onnx as export_onnx
    import convsight.export.runtime as runtime

    def tiny_graph(model, names, path):  # a valid ONNX file, written fast (the real export is tested above)
        x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["images"], ["boxes"])], "g", [x],
                                  [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))

    monkeypatch.setattr(export_onnx, "export_detector", tiny_graph)
    monkeypatch.setattr(runtime, "detector_parity", lambda model, path, images: (0.5, 3))
    out = tmp_path / "ssd.onnx"
    r = cli("export", "onnx", "--arch", "ssd", "-o", out)
    assert r.code == 2 and "does not reproduce the eager model" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no temporary file left either


def test_onnx_embedder_exports_dlibs_resnet(cli, tmp_path, monkeypatch):
    from convsight.errors import WeightsError
    from convsight.faces.dlib_port import dat_path

    try:
        dat_path()
    except WeightsError:
        pytest.skip("dlib's model file (face_recognition_models) is not installed")
    monkeypatch.setenv("CONVSIGHT_CACHE", str(tmp_path / "cache"))  # the .dat conversion goes here
    out = tmp_path / "dlib.onnx"
    r = cli("export", "onnx-embedder", "-o", out, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["dim"], doc["chip_size"]) == (128, 150)
    assert doc["max_abs_diff"] < 1e-4
    assert out.is_file()
