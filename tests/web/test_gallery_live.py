"""The face gallery over HTTP, through real uvicorn on 127.0.0.1 and the real face models: the token
(none configured, missing, wrong, right), enroll / identify / list / remove round trips, and two
enrolls at once. Photos: scikit-image's astronaut (Eileen Collins) and cameraman."""

from __future__ import annotations

import http.client
import io
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from convsight.web.app import ServeConfig

TOKEN = "s3cret-token-for-tests"


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    from skimage import data

    astro = data.astronaut()
    return {"astronaut": _png(astro), "astronaut_flipped": _png(np.ascontiguousarray(astro[:, ::-1])),
            "cameraman": _png(np.repeat(data.camera()[..., None], 3, axis=2))}


def _call(port: int, method: str, path: str, fields: dict[str, str] | None = None,
          files: list[bytes] | None = None, token: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    boundary = uuid.uuid4().hex
    body, headers = b"", {}
    if fields is not None or files is not None:
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in (fields or {}).items()]
        parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p{i}.png"\r\n'
                  "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for i, data in enumerate(files or [])]
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body or None, headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_without_a_token_writes_are_off_and_reads_work_on_loopback(live, tmp_path, photos) -> None:  # type: ignore[no-untyped-def]
    with live(ServeConfig(warmup=False, gallery=str(tmp_path / "g.sqlite"))) as (port, _):
        status, doc = _call(port, "POST", "/api/faces/enroll", {"name": "Eileen"}, [photos["astronaut"]])
        assert status == 403 and "--token" in doc["error"]
        status, doc = _call(port, "DELETE", "/api/faces/people/Eileen", token="anything")
        assert status == 403
        assert _call(port, "GET", "/api/faces/people") == (200, {"people": {}})
    assert not (tmp_path / "g.sqlite").exists()  # nothing was created by refused or read-only calls


def test_token_missing_wrong_and_right(live, tmp_path, photos) -> None:  # type: ignore[no-untyped-def]
    with live(ServeConfig(warmup=False, gallery=str(tmp_path / "g.sqlite"), token=TOKEN)) as (port, _):
        for given in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
            status, doc = _call(port, "POST", "/api/faces/enroll", {"name": "Eileen"}, [photos["astronaut"]], given)
            assert status == 401 and "token" in doc["error"], (given, doc)
            assert _call(port, "GET", "/api/faces/people", token=given)[0] == 401  # with a token, reads need it too
        status, doc = _call(port, "POST", "/api/faces/enroll", {"name": "Eileen"}, [photos["astronaut"]], TOKEN)
        assert status == 200 and doc == {"name": "Eileen", "added": 1, "total": 1}, doc
        assert _call(port, "GET", "/api/faces/people", token=TOKEN) == (200, {"people": {"Eileen": 1}})


def test_enroll_identify_remove_round_trip(live, tmp_path, photos) -> None:  # type: ignore[no-untyped-def]
    with live(ServeConfig(warmup=False, gallery=str(tmp_path / "g.sqlite"), token=TOKEN)) as (port, _):
        status, doc = _call(port, "POST", "/api/faces/enroll", {"name": "Eileen Collins"},
                            [photos["astronaut"], photos["astronaut_flipped"]], TOKEN)
        assert status == 200 and doc["added"] == 2, doc
        assert _call(port, "POST", "/api/faces/enroll", {"name": "Cameraman"}, [photos["cameraman"]], TOKEN)[0] == 200
        status, doc = _call(port, "POST", "/api/faces/identify", {"top_k": "2"}, [photos["astronaut"]], TOKEN)
        assert status == 200 and len(doc["faces"]) == 1, doc
        face = doc["faces"][0]
        assert face["identity"] == "Eileen Collins" and [m["name"] for m in face["matches"]] == ["Eileen Collins", "Cameraman"]
        status, doc = _call(port, "DELETE", "/api/faces/people/Eileen%20Collins", token=TOKEN)
        assert status == 200 and doc["removed"] == 2, doc
        assert _call(port, "DELETE", "/api/faces/people/Eileen%20Collins", token=TOKEN)[0] == 404
        status, doc = _call(port, "POST", "/api/faces/identify", {}, [photos["astronaut"]], TOKEN)
        assert status == 200 and doc["faces"][0]["identity"] == "unknown", doc  # only the cameraman is left, too far
        assert _call(port, "GET", "/api/faces/people", token=TOKEN) == (200, {"people": {"Cameraman": 1}})
    from convsight.faces.dlib_port import DlibResNet
    from convsight.faces.gallery import Gallery

    with Gallery(tmp_path / "g.sqlite", DlibResNet.embedder_id, DlibResNet.dim) as g:  # the CLI's gallery, same file
        assert g.names() == {"Cameraman": 1}


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "Robert'); DROP TABLE faces;--", "a/b", "_hidden"])
def test_bad_names_are_refused(live, tmp_path, photos, name) -> None:  # type: ignore[no-untyped-def]
    with live(ServeConfig(warmup=False, gallery=str(tmp_path / "g.sqlite"), token=TOKEN)) as (port, _):
        status, doc = _call(port, "POST", "/api/faces/enroll", {"name": name}, [photos["cameraman"]], TOKEN)
        assert status == 400 and "a name is" in doc["error"], doc


def test_two_enrolls_at_once_lose_nothing(live, tmp_path, photos) -> None:  # type: ignore[no-untyped-def]
    cfg = ServeConfig(warmup=False, workers=2, gallery=str(tmp_path / "g.sqlite"), token=TOKEN)
    with live(cfg) as (port, _), ThreadPoolExecutor(2) as clients:
        jobs = [("Eileen", photos["astronaut"]), ("Cameraman", photos["cameraman"])]
        answers = list(clients.map(lambda j: _call(port, "POST", "/api/faces/enroll", {"name": j[0]}, [j[1]], TOKEN), jobs))
        assert all(s == 200 for s, _ in answers), answers
        assert _call(port, "GET", "/api/faces/people", token=TOKEN) == (200, {"people": {"Cameraman": 1, "Eileen": 1}})


def test_a_photo_without_exactly_one_face_is_refused_before_writing(live, tmp_path, photos) -> None:  # type: ignore[no-untyped-def]
    blank = _png(np.full((120, 120, 3), 200, np.uint8))
    with live(ServeConfig(warmup=False, gallery=str(tmp_path / "g.sqlite"), token=TOKEN)) as (port, _):
        status, doc = _call(port, "POST", "/api/faces/enroll", {"name": "Eileen"}, [photos["astronaut"], blank], TOKEN)
        assert status == 422 and "photo 2 shows 0 faces" in doc["error"], doc
        assert _call(port, "GET", "/api/faces/people", token=TOKEN) == (200, {"people": {}})


def test_docs_only_when_asked(live) -> None:  # type: ignore[no-untyped-def]
    for docs, expected in ((False, 404), (True, 200)):
        with live(ServeConfig(warmup=False, docs=docs)) as (port, _):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/docs")
            assert conn.getresponse().status == expected
            conn.close()


def test_without_a_token_reads_are_for_loopback_only() -> None:
    from starlette.requests import Request

    from convsight.web.errors import Forbidden, Unauthorised
    from convsight.web.faces_api import authorise

    def req(host: str, auth: str | None = None) -> Request:
        headers = [(b"authorization", auth.encode())] if auth else []
        return Request({"type": "http", "headers": headers, "client": (host, 5000)})

    for host in ("127.0.0.1", "::1", "127.0.0.2"):
        authorise(req(host), None, write=False)
    for host in ("192.168.1.20", "10.0.0.1", "2001:db8::1", "testclient"):
        with pytest.raises(Forbidden):
            authorise(req(host), None, write=False)
    authorise(req("192.168.1.20", f"Bearer {TOKEN}"), TOKEN, write=False)  # a token opens reads from anywhere
    with pytest.raises(Unauthorised):
        authorise(req("127.0.0.1", "Bearer nope"), TOKEN, write=False)  # and, once set, is needed on loopback too
