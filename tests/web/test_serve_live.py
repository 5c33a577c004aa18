"""The server under pressure, through real uvicorn on 127.0.0.1: a full queue, the time limit, health
checks while every worker is busy, a chunked upload over the cap, a client vanishing mid-upload.

The slow parts are a tiny fake task held on a threading.Event, never a real model, so the tests are
quick and exact. Every request is bounded in count and time.
"""

from __future__ import annotations

import http.client
import io
import json
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convsight.web.app import ServeConfig
from convsight.web.tasks import TaskResult

BOUNDARY = "convsightTestBoundary"


def _png(size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(data: bytes, task: str = "slow") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"task\"\r\n\r\n{task}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


class Gate:
    """A fake task that holds its worker until released, and notes what it saw."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def __call__(self, image: np.ndarray) -> TaskResult:
        self.started.release()
        self.release.wait(10)
        return TaskResult(image, {"shape": list(image.shape)})


def _post(port: int, body: bytes, timeout: float = 20) -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/api/run", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        r = conn.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(raw)
    finally:
        conn.close()


def _get(port: int, path: str) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    finally:
        conn.close()


@pytest.fixture
def decoded_from(monkeypatch) -> list[Path]:  # type: ignore[no-untyped-def]
    """The folders the server decoded uploads from: proof that tmp_dir is where the temp files go."""
    from convsight.io import images

    seen: list[Path] = []
    real = images.load_image

    def spy(path, max_pixels=None):  # type: ignore[no-untyped-def]
        seen.append(Path(path).parent.parent)
        assert Path(path).exists()
        return real(path, max_pixels)

    monkeypatch.setattr(images, "load_image", spy)
    return seen


def _wait_for(cond, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_full_queue_is_refused_with_503_while_health_checks_stay_fast(live, tmp_path, decoded_from) -> None:  # type: ignore[no-untyped-def]
    gate = Gate()
    cfg = ServeConfig(workers=1, queue=1, warmup=False, tmp_dir=str(tmp_path))
    with live(cfg, {"slow": gate}) as (port, app), ThreadPoolExecutor(2) as clients:
        body = _multipart(_png())
        first = clients.submit(_post, port, body)
        assert gate.started.acquire(timeout=10)  # the only worker is now held
        second = clients.submit(_post, port, body)
        _wait_for(lambda: app.state.pool.pending == 2)  # one running, one waiting: the queue is full
        status, headers, doc = _post(port, body)
        assert status == 503 and "busy" in doc["error"] and "\n" not in doc["error"]
        assert int(headers["retry-after"]) >= 1
        # the event loop is free while the worker is blocked: liveness and readiness answer at once
        times = [_get(port, "/healthz") for _ in range(5)] + [_get(port, "/readyz")]
        assert all(s == 200 for s, _ in times), times
        assert max(t for _, t in times) < 0.5, times
        gate.release.set()
        for fut in (first, second):
            s, _, d = fut.result(20)
            assert s == 200 and d["result"]["shape"] == [32, 32, 3], d
    assert decoded_from == [tmp_path, tmp_path]  # the uploads were written under tmp_dir...
    assert list(tmp_path.iterdir()) == []  # ...and is gone after


def test_a_request_past_the_time_limit_gets_504(live) -> None:  # type: ignore[no-untyped-def]
    gate = Gate()
    with live(ServeConfig(workers=1, queue=0, timeout_s=0.5, warmup=False), {"slow": gate}) as (port, app):
        t0 = time.perf_counter()
        status, _, doc = _post(port, _multipart(_png()))
        assert status == 504 and "0.5 s limit" in doc["error"] and time.perf_counter() - t0 < 5
        assert app.state.pool.pending == 1  # the stuck job still holds its slot until it really ends
        gate.release.set()
        _wait_for(lambda: app.state.pool.pending == 0)


def test_readyz_waits_for_the_warm_up(live) -> None:  # type: ignore[no-untyped-def]
    gate = Gate()
    with live(ServeConfig(workers=1, warmup=True), {"slow": gate}) as (port, _):
        assert gate.started.acquire(timeout=10)  # warm-up is running the task on its small picture
        assert _get(port, "/readyz")[0] == 503 and _get(port, "/healthz")[0] == 200
        gate.release.set()
        _wait_for(lambda: _get(port, "/readyz")[0] == 200)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(10)
    raw = b""
    while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
        part = sock.recv(65536)
        if not part:
            break
        raw += part
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_chunked_upload_over_the_cap_is_cut_off_on_the_wire(live, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cap = 200_000
    gate = Gate()
    gate.release.set()
    with live(ServeConfig(max_bytes=cap, warmup=False, tmp_dir=str(tmp_path)), {"slow": gate}) as (port, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall((f"POST /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                      f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode())
        sock.sendall(_chunk(_multipart(b"\x89PNG\r\n\x1a\n", "slow")[:-len(f"\r\n--{BOUNDARY}--\r\n")]))
        piece, planned, sent = b"\x00" * 65536, 50_000_000, 0  # would be 250x the cap if it were all read
        try:
            while sent < planned and not select.select([sock], [], [], 0)[0]:
                sock.sendall(_chunk(piece))
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: that is the point
        status, body = _read_response(sock)
        sock.close()
        assert status == 413 and "larger than 0.2 MB" in json.loads(body)["error"]
        assert sent < planned / 4, sent  # refused long before the end, not after receiving it all
        assert _get(port, "/healthz")[0] == 200
    assert list(tmp_path.iterdir()) == []


def test_a_chunked_upload_under_the_cap_is_accepted(live) -> None:  # type: ignore[no-untyped-def]
    gate = Gate()
    gate.release.set()
    with live(ServeConfig(max_bytes=200_000, warmup=False), {"slow": gate}) as (port, _):
        body = _multipart(_png(48))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/api/run")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for i in range(0, len(body), 100):
            conn.send(_chunk(body[i:i + 100]))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        doc = json.loads(r.read())
        conn.close()
        assert r.status == 200 and doc["result"]["shape"] == [48, 48, 3], doc


def test_a_client_vanishing_mid_upload_leaves_no_file(live, tmp_path, decoded_from) -> None:  # type: ignore[no-untyped-def]
    gate = Gate()
    gate.release.set()
    with live(ServeConfig(max_bytes=2_000_000, warmup=False, tmp_dir=str(tmp_path)), {"slow": gate}) as (port, app):
        body = _multipart(_png(400) + b"\x00" * 1_000_000)
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall((f"POST /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                      f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode())
        sock.sendall(body[:len(body) // 3])
        time.sleep(0.2)
        sock.close()  # gone, two thirds short
        time.sleep(0.3)
        assert list(tmp_path.iterdir()) == [] and app.state.pool.pending == 0
        status, _, doc = _post(port, _multipart(_png()))  # the server carries on
        assert status == 200 and decoded_from == [tmp_path], doc  # only the good upload was written
    assert list(tmp_path.iterdir()) == []


def test_real_models_shared_by_two_workers_give_the_sequential_answers(live) -> None:  # type: ignore[no-untyped-def]
    """Loaded once, warmed up, then called from two worker threads at once: the same answers as
    calling them one after the other in this thread."""
    from convsight.io.synthetic import SynthConfig, render_scene
    from convsight.web.app import run_upload
    from convsight.web.tasks import TASKS

    scene = render_scene(SynthConfig(image_size=(192, 192), min_objects=3), 11, 0).image
    buf = io.BytesIO()
    Image.fromarray(scene).save(buf, format="PNG")
    png = buf.getvalue()
    cfg = ServeConfig(workers=2, queue=4, warmup=True)
    expected = {t: run_upload(png, t, cfg)["result"] for t in ("detect", "style")}
    with live(cfg, dict(TASKS)) as (port, _), ThreadPoolExecutor(4) as clients:
        _wait_for(lambda: _get(port, "/readyz")[0] == 200, timeout=120)
        order = ["detect", "style", "detect", "style"]
        answers = list(clients.map(lambda t: _post(port, _multipart(png, t), timeout=120), order))
    for task, (status, _, doc) in zip(order, answers, strict=True):
        assert status == 200, doc
        got, want = doc["result"], expected[task]
        if task == "style":
            assert got == want
        else:
            assert [o["class"] for o in got["objects"]] == [o["class"] for o in want["objects"]]
            assert np.allclose([o["box_xyxy"] for o in got["objects"]], [o["box_xyxy"] for o in want["objects"]], atol=0.5)
