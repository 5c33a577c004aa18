"""The detector files that ship in ``convsight/assets/detectors`` load and still detect.

Each is scored on a freshly generated validation set (a seed no training run used) against the
README's promise for the shipped files, mAP@0.5 >= 0.90, so a broken, truncated or mis-converted
shipped file (or a change that breaks or degrades a detector's decoding) fails the default suite.
"""

from __future__ import annotations

import pytest
import torch

from convsight.detection import engine
from convsight.detection.files import shipped_detector, shipped_detectors
from convsight.detection.serialize import load_detector, read_detector_metadata
from convsight.io.synth_writer import write_synthetic
from convsight.io.synthetic import SynthConfig

ARCHS = ("yolo", "ssd", "faster_rcnn")
# mAP@0.5 of the shipped (multi-scale) files on this set (seed 2026): yolo 0.938, ssd 0.936, faster_rcnn
# 0.939 (the 256-px files before them: 0.929, 0.944, 0.911). The floor is the README's claim ("against a
# floor of 0.90"); the seed is fixed, so the score is deterministic. Do not lower it to make a file pass.
TARGET = 0.90


@pytest.fixture(scope="module")
def fresh_val(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_synthetic(tmp_path_factory.mktemp("fresh_val"), 60, SynthConfig(image_size=(256, 256)),
                           seed=2026, fmt="coco", overwrite=True)


@pytest.fixture(scope="module")
def scores(fresh_val) -> dict[str, float]:  # type: ignore[no-untyped-def]
    out = {}
    with torch.no_grad():
        for arch in ARCHS:
            path = shipped_detector(arch)
            assert path is not None, f"no shipped {arch} file"
            model, names = load_detector(path)
            assert tuple(names) == tuple(fresh_val.class_names)
            out[arch] = engine.evaluate(model, fresh_val, batch_size=8).metrics.map50
    return out


def test_the_three_lineage_detectors_ship_small() -> None:
    assert set(ARCHS) <= set(shipped_detectors())
    total = sum(shipped_detector(a).stat().st_size for a in shipped_detectors())  # type: ignore[union-attr]
    assert total < 30e6


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_file_records_how_to_reproduce_it(arch: str) -> None:
    meta = read_detector_metadata(shipped_detector(arch))  # type: ignore[arg-type]
    assert meta["arch"] == arch and "convsight detect train" in meta["reproduce"]


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_detector_meets_the_readme_floor(arch: str, scores: dict[str, float]) -> None:
    assert scores[arch] >= TARGET, f"{arch}: mAP@0.5 {scores[arch]:.3f} < {TARGET}"


# ---- across input sizes (issue 16, item 3) ----------------------------------------------------------
# The same 60 scenes' recipe at 448 px: objects keep their pixel sizes on a larger canvas, so resized to a
# fixed 256 px input they shrank below what the anchors cover (the files trained at 256 only scored
# yolo 0.741, ssd 0.735, faster_rcnn 0.727 here). The multi-scale files run each image at its own size
# (input_sides) and score yolo 0.939, ssd 0.941, faster_rcnn 0.947 on this set.
SIDES = (256, 448)


@pytest.fixture(scope="module")
def scores_448(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    data = write_synthetic(tmp_path_factory.mktemp("fresh_448"), 60, SynthConfig(image_size=(448, 448)),
                           seed=2026, fmt="coco", overwrite=True)
    out = {}
    with torch.no_grad():
        for arch in ARCHS:
            model, _ = load_detector(shipped_detector(arch))  # type: ignore[arg-type]
            out[arch] = engine.evaluate(model, data, batch_size=8, loss=False).metrics.map50
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_detector_runs_each_image_at_its_own_size(arch: str) -> None:
    model, _ = load_detector(shipped_detector(arch))  # type: ignore[arg-type]
    assert model.config.input_sides == SIDES
    assert "--init" in read_detector_metadata(shipped_detector(arch))["reproduce"]  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_detector_holds_at_448_px(arch: str, scores_448: dict[str, float]) -> None:
    assert scores_448[arch] >= TARGET, f"{arch}: mAP@0.5 {scores_448[arch]:.3f} < {TARGET} on 448 px scenes"
