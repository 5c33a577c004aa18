"""``convsight serve``: one page to upload an image, pick detect / faces / style, and see the result.

The server never trusts the upload: its size is capped while it is read, its type is sniffed from
the first bytes (not the file name or the declared content type), its pixel count is checked from the
header before decoding (:func:`convsight.io.images.load_image`), and it lives only in a temporary
folder that is removed when the request ends. Every failure is a JSON ``{"error": "..."}`` with a
4xx/5xx status, which the page shows in place of the result.

Model calls run in a bounded :class:`~convsight.web.pool.InferencePool`, never on the event loop, so
``GET /healthz`` (alive) and ``GET /readyz`` (models loaded and warmed up) answer at once under load;
a full queue is answered 503 with Retry-After, a job past the time limit 504.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# FastAPI resolves the route annotations from this module's globals, so its types are imported here;
# nothing imports convsight.web.app except `convsight serve` and the tests.
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from convsight.errors import ConvsightError
from convsight.faces.paths import default_gallery_path
from convsight.web.errors import error, error_response
from convsight.web.faces_api import register as register_gallery
from convsight.web.pool import InferencePool, default_workers
from convsight.web.tasks import TASKS, TaskResult, warm_up
from convsight.web.upload import (
    NotAnImage,
    decode_upload,
    parse_upload,
    read_capped_body,
    sniff_image_type,
)

__all__ = ["NotAnImage", "ServeConfig", "create_app", "run_upload", "sniff_image_type"]

Task = Callable[[Any], TaskResult]

@dataclass(frozen=True)
class ServeConfig:
    """max_bytes: largest upload accepted; max_pixels: largest decoded image (width x height);
    workers: model calls run at once (None: one per core, at most 4); queue: requests that may wait for a
    worker before the next is answered 503; timeout_s: per-request limit (queue wait included, 504);
    warmup: load and run every model at start-up (``/readyz`` says 503 until done); tmp_dir: where
    the upload's temporary folder is made (None: the system's); gallery: the face gallery file (None:
    the CLI's default); token: needed to change the gallery (None: writes off, reads on loopback only);
    docs: serve the OpenAPI page at /docs."""

    max_bytes: int = 10_000_000
    max_pixels: int = 25_000_000
    workers: int | None = None
    queue: int = 8
    timeout_s: float = 60.0
    warmup: bool = True
    tmp_dir: str | None = None
    gallery: str | None = None
    token: str | None = field(default=None, repr=False)
    docs: bool = False


def _png_data_url(image: Any) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def run_upload(data: bytes, task: str, config: ServeConfig, tasks: Mapping[str, Task] = TASKS) -> dict[str, Any]:
    """Check an uploaded file and run ``task`` on it; raises ConvsightError with a user-facing message.
    Blocking (decoding + the model call): the server calls it in its worker pool."""
    import torch

    if task not in tasks:
        raise ConvsightError(f"unknown task {task!r}; choose one of {', '.join(tasks)}")
    image = decode_upload(data, config.max_pixels, config.tmp_dir)
    t0 = time.perf_counter()
    with torch.inference_mode():  # thread-local: this worker only
        result: TaskResult = tasks[task](image)
    return {"task": task, "width": int(image.shape[1]), "height": int(image.shape[0]),
            "seconds": round(time.perf_counter() - t0, 3), "result": result.data,
            "image": _png_data_url(result.image)}


def create_app(config: ServeConfig | None = None, tasks: Mapping[str, Task] | None = None) -> FastAPI:
    """The FastAPI application (built on demand: importing this module starts nothing).
    ``tasks`` replaces the shipped ones (tests register a tiny fake task there)."""
    cfg = config or ServeConfig()
    table: dict[str, Task] = dict(TASKS if tasks is None else tasks)
    pool = InferencePool(cfg.workers or default_workers(), cfg.queue, cfg.timeout_s)
    ready = threading.Event()
    state: dict[str, str] = {}

    def warm() -> None:
        try:
            warm_up(table)
            ready.set()
        except Exception as e:  # noqa: BLE001 - /readyz reports it; the server stays up for /healthz
            state["error"] = f"warm-up failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if cfg.warmup:
            asyncio.get_running_loop().run_in_executor(None, warm)  # in the background: /healthz is up at once
        else:
            ready.set()
        yield
        pool.shutdown()

    app = FastAPI(title="convsight", docs_url="/docs" if cfg.docs else None, redoc_url=None,
                  openapi_url="/openapi.json" if cfg.docs else None, lifespan=lifespan)
    app.state.pool = pool

    @app.exception_handler(ConvsightError)  # every route: a ConvsightError becomes its one-line JSON answer
    async def convsight_error(_: Request, e: ConvsightError) -> JSONResponse:
        return error_response(e, pool)

    register_gallery(app, pool, Path(cfg.gallery) if cfg.gallery else default_gallery_path(), cfg.token or None,
                     cfg.max_bytes, cfg.max_pixels, cfg.tmp_dir)
    page = resources.files("convsight.web").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/tasks")
    async def list_tasks() -> dict[str, list[str]]:
        return {"tasks": list(table)}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "pending": pool.pending}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if ready.is_set() or not cfg.warmup:
            return JSONResponse({"ready": True, "tasks": list(table)})
        return error(503, state.get("error", "models are still loading"))

    @app.post("/api/run")
    async def run(request: Request) -> JSONResponse:
        body = await read_capped_body(request, cfg.max_bytes)
        data, task = await parse_upload(request, body, cfg.max_bytes)
        del body
        return JSONResponse(await pool.run(run_upload, data, task, cfg, table))

    return app
