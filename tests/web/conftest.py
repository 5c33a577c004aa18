"""A real uvicorn server on 127.0.0.1 (a free port), for the tests that go over the wire."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def _live(cfg: Any, tasks: dict | None = None) -> Iterator[tuple[int, Any]]:  # type: ignore[type-arg]
    import uvicorn

    from convsight.web.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(cfg, tasks)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start in 20 s"
        time.sleep(0.02)
    try:
        yield port, app
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def live() -> Callable[..., Any]:
    """``with live(ServeConfig(...), tasks) as (port, app):`` serves ``create_app`` until the block ends."""
    return _live
