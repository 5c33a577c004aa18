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
# mAP@0.5 of the shipped files on this set (seed 2026): yolo 0.929, ssd 0.944, faster_rcnn 0.911; on
# five other fresh 60-scene sets (seeds 31-35): yolo 0.904-0.952, ssd 0.906-0.929, faster_rcnn 0.891-0.933.
# The floor is the README's claim ("against a floor of 0.90"); the seed is fixed, so the score is
# deterministic and the lowest file (faster_rcnn) clears it by 0.011. Do not lower it to make a file pass.
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
