"""The demo opens with real objects in the shipped photos (convsight.demo.photos)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_demo_runs_the_photos_stage_first(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from convsight.demo import detection, faces, foundation, photos, run, style

    order: list[str] = []
    for module, name in ((photos, "photos_stage"), (foundation, "scenes_stage"), (detection, "detection_stage"),
                         (faces, "faces_stage"), (style, "style_stage"), (foundation, "pretrain_stage"),
                         (foundation, "evaluator_stage")):
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: order.append(_n))
    run.run_demo(tmp_path / "demo")
    assert order[0] == "photos_stage" and order[1] == "scenes_stage"


def test_the_photos_stage_writes_a_picture_and_a_table(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from convsight.demo import photos
    from convsight.report import Report

    every = photos.shipped_photos()
    assert list(every) == list(photos.PHOTOS) and all(im.ndim == 3 and im.dtype.name == "uint8" for im in every.values())
    two = {k: every[k] for k in ("coffee", "astronaut")}  # two of the seven keep the test quick
    monkeypatch.setattr(photos, "shipped_photos", lambda: two)
    report = Report(tmp_path, "demo", log=lambda _: None)
    photos.photos_stage(report, tmp_path, seed=0)
    with Image.open(tmp_path / "photos.png") as im:
        assert im.size == (2 * 324 + 4, len(photos.ARCHS) * 324 + 4)  # a row per method, a column per photo
    rows = json.loads((tmp_path / "photos.json").read_text())
    assert [(r["photo"], r["method"]) for r in rows] == [(p, a.replace("_", "-")) for a, _ in photos.ARCHS for p in two]
    found = {(r["photo"], r["method"]): r["found (best first)"] for r in rows}
    assert found[("coffee", "imagenet-sliding")].startswith("espresso")  # the whole-image answer, 0.99
    assert "helmet" in found[("astronaut", "imagenet-sliding")]
    assert report.sections[0].title == "Real objects in real photos" and "photos.png" in report.sections[0].images[0][0]


def test_the_photos_stage_adds_torchvisions_detectors_whose_weights_are_cached(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 4: with a tv: detector's COCO file in the torch cache, the demo runs it on the photos
    too. Here the cache is faked: the file check says yes and the state dict is a random model's."""
    from convsight.demo import photos
    from convsight.detection import tv
    from convsight.detection.tv import load_pretrained
    from convsight.report import Report

    arch = "tv:ssdlite320_mobilenet_v3_large"
    state = load_pretrained(arch, "random")[0].tv.state_dict()
    monkeypatch.setattr(photos, "cached_tv_archs", lambda: [arch])
    monkeypatch.setattr(tv, "coco_state_dict", lambda spec, hint="": (state, tmp_path / "fake.pth"))
    monkeypatch.setattr(photos, "shipped_photos", lambda: {"coffee": _coffee()})
    report = Report(tmp_path, "demo", log=lambda _: None)
    photos.photos_stage(report, tmp_path, seed=0)
    rows = json.loads((tmp_path / "photos.json").read_text())
    assert [r["method"] for r in rows] == ["imagenet-localize", "imagenet-sliding", arch]
    assert arch in report.sections[0].text


def _coffee():  # type: ignore[no-untyped-def]
    from skimage import data

    return data.coffee()
