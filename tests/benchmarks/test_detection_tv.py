"""benchmarks/detection_tv.py: torchvision's detectors timed beside convsight's, saying where weights came from."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # benchmarks/ is not a package

import detection_tv  # noqa: E402

from convsight.weights import hub_cache_file  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_table_names_machine_weights_and_ratio(capsys) -> None:  # type: ignore[no-untyped-def]
    from convsight.detection.tv_build import MODELS, coco_enum

    arch = "tv:ssdlite320_mobilenet_v3_large"
    assert detection_tv.main(["--archs", f"{arch},ssd", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("measured on: ")
    cached = hub_cache_file(coco_enum(MODELS["ssdlite320_mobilenet_v3_large"])).is_file()
    row = next(line for line in out.splitlines() if line.startswith(arch))
    assert ("COCO (" in row) if cached else ("random (no COCO file" in row)  # never a silent stand-in
    rows = [line for line in out.splitlines() if line.startswith(("ssd ", arch))]
    assert "320x320" in row and len(rows) == 2
    assert min(float(r.rsplit("|", 1)[1].strip().rstrip("x")) for r in rows) == 1.0  # ratios to the fastest row
