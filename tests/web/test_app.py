"""The web API through FastAPI's TestClient: a good upload, and every way an upload can be wrong."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from convsight.detection.defaults import DEFAULT_ARCH, display_threshold
from convsight.io.synthetic import SynthConfig, render_scene
from convsight.web.app import ServeConfig, create_app, sniff_image_type


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    return TestClient(create_app(ServeConfig(max_bytes=2_000_000, max_pixels=4_000_000)))


@pytest.fixture(scope="module")
def scene_png() -> bytes:
    return _png(render_scene(SynthConfig(image_size=(256, 256), min_objects=3), 5, 0).image)


def test_page_and_task_list(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/")
    assert r.status_code == 200 and "<form" in r.text and 'id="result-image"' in r.text
    assert "detect" in client.get("/api/tasks").json()["tasks"]


def test_detect_returns_objects_and_a_picture(client, scene_png) -> None:  # type: ignore[no-untyped-def]
    # a misleading name and declared type: the server goes by the bytes
    r = client.post("/api/run", files={"file": ("notes.txt", scene_png, "text/plain")}, data={"task": "detect"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["width"] == 256 and d["image"].startswith("data:image/png;base64,")
    shown = display_threshold(DEFAULT_ARCH)  # the page draws what `detect predict` draws
    assert len(d["result"]["objects"]) >= 1 and all(o["score"] >= shown for o in d["result"]["objects"])


@pytest.mark.parametrize("payload, status, message", [
    (b"", 400, "empty"),
    (b"hello, I am text named photo.jpg", 415, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 400, "the uploaded image: not an image"),
    (b"\xff\xd8\xff" + b"\x00" * 2_100_000, 413, "larger than"),
])
def test_bad_uploads_get_one_clear_error(client, payload, status, message) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/run", files={"file": ("photo.jpg", payload, "image/jpeg")}, data={"task": "detect"})
    assert r.status_code == status and message in r.json()["error"], r.text


def test_pixel_limit_is_checked_before_decoding(client) -> None:  # type: ignore[no-untyped-def]
    big = _png(np.zeros((2100, 2100, 3), np.uint8))  # 4.4 MP > 4 MP, but a small file
    r = client.post("/api/run", files={"file": ("a.png", big, "image/png")}, data={"task": "detect"})
    assert r.status_code == 400 and "megapixels" in r.json()["error"]


def test_unknown_task(client, scene_png) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/run", files={"file": ("a.png", scene_png, "image/png")}, data={"task": "paint"})
    assert r.status_code == 400 and "unknown task" in r.json()["error"]


def test_nothing_is_left_in_the_temp_dir(client, scene_png, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client.post("/api/run", files={"file": ("a.png", scene_png, "image/png")}, data={"task": "detect"})
    client.post("/api/run", files={"file": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")}, data={"task": "detect"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("head, kind", [(b"\xff\xd8\xff\xe0", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"),
                                        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"), (b"%PDF-1.7", None)])
def test_sniffing(head: bytes, kind: str | None) -> None:
    assert sniff_image_type(head) == kind


def test_faces_finds_the_astronaut(client) -> None:  # type: ignore[no-untyped-def]
    from skimage import data

    r = client.post("/api/run", files={"file": ("a.png", _png(data.astronaut()), "image/png")}, data={"task": "faces"})
    assert r.status_code == 200, r.text
    faces = r.json()["result"]["faces"]
    assert len(faces) == 1 and len(faces[0]["landmarks"]) == 5


def test_style_returns_a_stylised_picture_of_the_same_size(client, scene_png) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/run", files={"file": ("a.png", scene_png, "image/png")}, data={"task": "style"})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["output_size"] == [256, 256]
