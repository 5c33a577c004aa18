"""The face gallery over HTTP, on the same SQLite + FAISS gallery as ``convsight faces``.

``POST /api/faces/enroll`` (name + photos, one face each), ``POST /api/faces/identify`` (a photo),
``GET /api/faces/people``, ``DELETE /api/faces/people/{name}``.

Who may do what: writes need the server's token (``--token`` / ``CONVSIGHT_TOKEN``) sent as
``Authorization: Bearer <token>`` and compared in constant time; with no token configured the write
endpoints are off (403). Reads need the token when one is set, and otherwise answer only clients on
loopback. Every gallery access runs in the worker pool under one lock, each with its own SQLite
connection (a connection cannot cross threads), so two enrolls at once both land; the gallery's
own generation counter keeps it right against other processes (the CLI) writing the same file.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from convsight.errors import ConvsightError
from convsight.faces.pipeline import FaceCountError
from convsight.web.errors import Forbidden, NotFound, Unauthorised
from convsight.web.pool import InferencePool
from convsight.web.upload import decode_upload, parse_form, read_capped_body

# A letter or digit first, then letters, digits, space, dot, apostrophe or hyphen; at most 64 in all.
_NAME = re.compile(r"[^\W_][\w .'-]{0,63}")
MAX_PHOTOS = 16


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name) or "_" in name:
        raise ConvsightError("a name is 1-64 letters, digits, spaces, dots, apostrophes or hyphens, starting with a letter or digit")
    return name


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorise(request: Request, token: str | None, write: bool) -> None:
    """Raise Forbidden / Unauthorised unless this request may read (write=False) or change the gallery."""
    if token is None:
        if write:
            raise Forbidden("gallery writes are off: start the server with --token or CONVSIGHT_TOKEN")
        if not _is_loopback(request.client.host if request.client else None):
            raise Forbidden("the gallery is readable from this machine only, unless the server has a token")
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    # compare_digest on bytes: constant time whatever the length or content of what was sent
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise Unauthorised("missing or wrong token: send Authorization: Bearer <token>")


def register(app: FastAPI, pool: InferencePool, gallery_path: Path, token: str | None,
             max_bytes: int, max_pixels: int, tmp_dir: str | None) -> None:
    """Add the four gallery endpoints to ``app``."""
    lock = threading.Lock()  # one gallery writer or reader at a time within this server

    def _pipe():  # type: ignore[no-untyped-def]
        from convsight.web.tasks import _face_pipeline

        return _face_pipeline()

    def _open(pipe: Any = None):  # type: ignore[no-untyped-def]
        from convsight.faces.dlib_port import DlibResNet
        from convsight.faces.gallery import Gallery

        if pipe is None:  # no model needed to list or remove
            return Gallery(gallery_path, DlibResNet.embedder_id, DlibResNet.dim)
        return Gallery(gallery_path, pipe.embedder.embedder_id, pipe.embedder.dim)

    def _faces(data: bytes) -> Any:
        import torch

        image = decode_upload(data, max_pixels, tmp_dir)
        with torch.inference_mode():
            return _pipe()(image)

    def enroll_job(name: str, photos: list[bytes]) -> dict[str, Any]:
        embeddings = []
        for i, data in enumerate(photos, 1):  # all photos checked before anything is written
            found = _faces(data)
            if len(found) != 1:
                raise FaceCountError(f"photo {i} shows {len(found)} faces; each photo must show exactly one")
            embeddings.append(found.embeddings[0].numpy())
        import numpy as np

        with lock, _open(_pipe()) as g:
            added = g.enroll(name, np.stack(embeddings), [f"web upload {i}" for i in range(1, len(photos) + 1)])
            total = g.names().get(name, added)
        return {"name": name, "added": added, "total": total}

    def identify_job(data: bytes, top_k: int) -> dict[str, Any]:
        from convsight.faces.verification import closest_identity, default_threshold

        found = _faces(data)
        if len(found) == 0:
            raise FaceCountError("no face found in the uploaded image")
        pipe = _pipe()
        limit = default_threshold(pipe.embedder).value
        matches: list[list[tuple[str, float]]] = [[] for _ in range(len(found))]
        if gallery_path.is_file():
            with lock, _open(pipe) as g:
                matches = g.identify(found.embeddings.numpy(), k=top_k)
        faces = []
        for box, near in zip(found.detections.boxes.tolist(), matches, strict=True):
            faces.append({"box_xyxy": [round(v, 1) for v in box], "identity": closest_identity(near, limit),
                          "matches": [{"name": n, "distance": round(d, 4)} for n, d in near]})
        return {"threshold": limit, "faces": faces}

    def people_job() -> dict[str, Any]:
        if not gallery_path.is_file():
            return {"people": {}}
        with lock, _open() as g:
            return {"people": g.names()}

    def remove_job(name: str) -> dict[str, Any]:
        removed = 0
        if gallery_path.is_file():
            with lock, _open() as g:
                removed = g.remove(name)
        if removed == 0:
            raise NotFound(f"{name!r} is not in the gallery")
        return {"name": name, "removed": removed}

    async def _form(request: Request, max_files: int) -> tuple[dict[str, str], list[bytes]]:
        body = await read_capped_body(request, max_bytes)
        return await parse_form(request, body, max_bytes, max_files=max_files)

    @app.post("/api/faces/enroll")
    async def enroll(request: Request) -> JSONResponse:
        authorise(request, token, write=True)
        fields, photos = await _form(request, MAX_PHOTOS)
        name = check_name(fields.get("name", ""))
        if not photos:
            raise ConvsightError("send at least one photo in a 'file' field")
        return JSONResponse(await pool.run(enroll_job, name, photos))

    @app.post("/api/faces/identify")
    async def identify(request: Request) -> JSONResponse:
        authorise(request, token, write=False)
        fields, photos = await _form(request, 1)
        if not photos:
            raise ConvsightError("send the photo in a 'file' field")
        top_k = fields.get("top_k", "3")
        if not top_k.isdigit() or not 1 <= int(top_k) <= 20:
            raise ConvsightError("top_k must be a whole number from 1 to 20")
        return JSONResponse(await pool.run(identify_job, photos[0], int(top_k)))

    @app.get("/api/faces/people")
    async def people(request: Request) -> JSONResponse:
        authorise(request, token, write=False)
        return JSONResponse(await pool.run(people_job))

    @app.delete("/api/faces/people/{name}")
    async def remove(request: Request, name: str) -> JSONResponse:
        authorise(request, token, write=True)
        return JSONResponse(await pool.run(remove_job, check_name(name)))
