"""``convsight faces ...`` end to end: detect, align, verify, and the gallery round trip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from convsight.io.images import load_image, save_image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import skimage.data
    from matplotlib import cbook

    d = tmp_path_factory.mktemp("photos")
    ast = skimage.data.astronaut()
    rot = cv2.warpAffine(ast, cv2.getRotationMatrix2D((222.0, 115.0), -6.0, 1.05), (512, 512),
                         borderMode=cv2.BORDER_REFLECT)
    jittered = np.clip(rot.astype(np.float32) * 0.85 + 10, 0, 255).astype(np.uint8)[9:480, 17:500]
    face = ast[30:230, 120:330]
    bad = d / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    return {
        "ast": save_image(ast, d / "astronaut.png"),
        "ast2": save_image(jittered, d / "astronaut_aug.jpg"),
        "hopper": save_image(load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), d / "hopper.jpg"),
        "coffee": save_image(skimage.data.coffee(), d / "coffee.jpg"),
        "two": save_image(np.concatenate([face, face[:, ::-1]], axis=1), d / "two.png"),
        "bad": bad,
    }


@pytest.fixture(autouse=True)
def _dirs(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    cache = tmp_path_factory.getbasetemp() / "faces_cli_cache"  # converted once per session
    monkeypatch.setenv("CONVSIGHT_CACHE", str(cache))
    monkeypatch.setenv("CONVSIGHT_DATA", str(tmp_path / "data"))


def test_verify_same_and_different(cli, photos) -> None:  # type: ignore[no-untyped-def]
    r = cli("faces", "verify", photos["ast"], photos["ast2"], "--json")
    assert r.code == 0, r.stderr
    same = json.loads(r.stdout)
    assert same["decision"] == "same" and same["distance"] < same["threshold"]
    r = cli("faces", "verify", photos["ast"], photos["hopper"])
    assert r.code == 0 and "different" in r.stdout and "threshold" in r.stdout
    r = cli("faces", "verify", photos["ast"], photos["hopper"], "--threshold", "0.9", "--json")
    assert json.loads(r.stdout)["decision"] == "same"  # the threshold option is honoured


@pytest.mark.parametrize("key, message", [
    ("coffee", "no face found in"),
    ("two", "2 faces found in"),
    ("bad", "bad.jpg"),
])  # fmt: skip
def test_user_errors_are_one_line_exit_2(cli, photos, key: str, message: str) -> None:  # type: ignore[no-untyped-def]
    r = cli("faces", "verify", photos["ast"], photos[key])
    assert r.code == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_detect_json_and_annotations(cli, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("faces", "detect", photos["ast"], photos["coffee"], "--out", tmp_path / "out", "--json")
    assert r.code == 0, r.stderr
    ast, coffee = json.loads(r.stdout)
    assert len(ast["faces"]) == 1 and coffee["faces"] == []
    assert len(ast["faces"][0]["landmarks"]) == 5 and ast["faces"][0]["score"] > 0.9
    drawn = load_image(tmp_path / "out" / "astronaut_faces.png")
    assert (drawn != load_image(photos["ast"])).any()
    assert (tmp_path / "out" / "coffee_faces.jpg").is_file()


def test_align_writes_chips(cli, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("faces", "align", photos["two"], "--out", tmp_path / "chips", "--template", "arcface112")
    assert r.code == 0, r.stderr
    chips = sorted((tmp_path / "chips").glob("face_*.png"))
    assert len(chips) == 2 and load_image(chips[0]).shape == (112, 112, 3)
    r = cli("faces", "align", photos["ast"], "--out", tmp_path / "c2", "--template", "nope")
    assert r.code == 2 and "unknown alignment template" in r.stderr


def test_gallery_round_trip(cli, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    g = tmp_path / "g.sqlite"
    assert cli("faces", "enroll", "eileen", photos["ast"], "--gallery", g).code == 0
    r = cli("faces", "enroll", "grace", photos["hopper"], "--gallery", g, "--json")
    assert r.code == 0 and json.loads(r.stdout)["added"] == 1
    r = cli("faces", "list", "--gallery", g, "--json")
    assert json.loads(r.stdout)["names"] == {"eileen": 1, "grace": 1}

    r = cli("faces", "identify", photos["ast2"], "--gallery", g, "--top-k", "2", "--json")
    assert r.code == 0, r.stderr
    (face,) = json.loads(r.stdout)["faces"]
    assert face["identity"] == "eileen" and [m["name"] for m in face["matches"]] == ["eileen", "grace"]

    assert cli("faces", "remove", "eileen", "--gallery", g).code == 0
    r = cli("faces", "identify", photos["ast2"], "--gallery", g, "--json")
    assert json.loads(r.stdout)["faces"][0]["identity"] == "unknown"  # grace is too far
    r = cli("faces", "remove", "eileen", "--gallery", g)
    assert r.code == 2 and "not in the gallery" in r.stderr


def test_default_gallery_under_data_dir(cli, photos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("faces", "enroll", "eileen", photos["ast"]).code == 0
    assert (tmp_path / "data" / "gallery.sqlite").is_file()
    r = cli("faces", "list")
    assert r.code == 0 and "eileen" in r.stdout


def test_enroll_refuses_group_photos_and_writes_nothing(  # type: ignore[no-untyped-def]
    cli, photos, tmp_path: Path
) -> None:
    g = tmp_path / "g.sqlite"
    r = cli("faces", "enroll", "x", photos["ast"], photos["two"], "--gallery", g)
    assert r.code == 2 and "where one was expected" in r.stderr
    assert not g.exists()
    r = cli("faces", "identify", photos["coffee"], "--gallery", g)
    assert r.code == 2 and "no gallery" in r.stderr
