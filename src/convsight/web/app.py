"""``convsight serve``: one page to upload an image, pick detect / faces / style, and see the result.

The server never trusts the upload: its size is capped while it is read, its type is sniffed from
the first bytes (not the file name or the declared content type), its pixel count is checked from the
header before decoding (:func:`convsight.io.images.load_image`), and it lives only in a temporary
folder that is removed when the request ends. Every failure is a JSON ``{"error": "..."}`` with a
4xx status, which the page shows in place of the result.
"""

from __future__ import annotations

import base64
import io
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# FastAPI resolves the route annotations from this module's globals, so its types are imported here;
# nothing imports convsight.web.app except `convsight serve` and the tests.
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from convsight.errors import ConvsightError, ImageError
from convsight.web.tasks import TASKS, TaskResult

# First bytes of the image formats we decode; anything else is refused before PIL sees it.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


class NotAnImage(ImageError):
    """The upload's first bytes name no image format we decode (answered with 415)."""


@dataclass(frozen=True)
class ServeConfig:
    """max_bytes: largest upload accepted; max_pixels: largest decoded image (width x height)."""

    max_bytes: int = 10_000_000
    max_pixels: int = 25_000_000


def sniff_image_type(head: bytes) -> str | None:
    """The image format named by the first bytes of a file, or None for anything else."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _png_data_url(image: Any) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def run_upload(data: bytes, task: str, config: ServeConfig) -> dict[str, Any]:
    """Check an uploaded file and run ``task`` on it; raises ConvsightError with a user-facing message."""
    from convsight.io.images import load_image

    if task not in TASKS:
        raise ConvsightError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if not data:
        raise ImageError("the uploaded file is empty")
    kind = sniff_image_type(data[:16])
    if kind is None:
        raise NotAnImage("the uploaded file is not an image (JPEG, PNG, GIF, BMP, TIFF or WebP), whatever its name says")
    with tempfile.TemporaryDirectory(prefix="convsight-upload-") as tmp:
        path = Path(tmp) / f"upload.{kind}"  # our own name: the client's file name is never used
        path.write_bytes(data)
        try:
            image = load_image(path, max_pixels=config.max_pixels)
        except ImageError as e:  # the temp path means nothing to the user
            raise ImageError(str(e).replace(str(path), "the uploaded image")) from None
    t0 = time.perf_counter()
    result: TaskResult = TASKS[task](image)
    return {"task": task, "width": int(image.shape[1]), "height": int(image.shape[0]),
            "seconds": round(time.perf_counter() - t0, 3), "result": result.data,
            "image": _png_data_url(result.image)}


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI application (built on demand: importing this module starts nothing)."""
    cfg = config or ServeConfig()
    app = FastAPI(title="convsight", docs_url=None, redoc_url=None)
    page = resources.files("convsight.web").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/tasks")
    def tasks() -> dict[str, list[str]]:
        return {"tasks": list(TASKS)}

    @app.post("/api/run")
    async def run(request: Request, file: UploadFile = File(...), task: str = Form("detect")) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_bytes + 65536:
            return _error(413, f"upload larger than {cfg.max_bytes / 1e6:.0f} MB")
        data = await file.read(cfg.max_bytes + 1)  # never more than the cap into memory
        if len(data) > cfg.max_bytes:
            return _error(413, f"upload larger than {cfg.max_bytes / 1e6:.0f} MB")
        try:
            return JSONResponse(run_upload(data, task, cfg))
        except NotAnImage as e:
            return _error(415, str(e))
        except ConvsightError as e:
            return _error(400, str(e))

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
