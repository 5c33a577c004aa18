"""Reading an upload off the wire with a hard cap.

The body is read from the raw ASGI stream chunk by chunk and counted as it arrives, so a chunked
upload with no Content-Length is cut off as soon as it passes the cap: nothing larger than the cap
plus the multipart envelope is ever held, and nothing of it touches disk. Only then is the (bounded)
body handed to the multipart parser, whose parts are closed whatever happens.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request

from convsight.errors import ConvsightError, ImageError

# Room for the multipart envelope (boundaries, part headers, the small "task" field) on top of the file.
ENVELOPE_BYTES = 64 * 1024


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


def sniff_image_type(head: bytes) -> str | None:
    """The image format named by the first bytes of a file, or None for anything else."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def decode_upload(data: bytes, max_pixels: int, tmp_dir: str | None = None) -> np.ndarray:
    """Sniff, write to a private temp folder (removed on every path) and decode one uploaded image."""
    from convsight.io.images import load_image

    if not data:
        raise ImageError("the uploaded file is empty")
    kind = sniff_image_type(data[:16])
    if kind is None:
        raise NotAnImage("the uploaded file is not an image (JPEG, PNG, GIF, BMP, TIFF or WebP), whatever its name says")
    with tempfile.TemporaryDirectory(prefix="convsight-upload-", dir=tmp_dir) as tmp:
        path = Path(tmp) / f"upload.{kind}"  # our own name: the client's file name is never used
        path.write_bytes(data)
        try:
            return load_image(path, max_pixels=max_pixels)
        except ImageError as e:  # the temp path means nothing to the user
            raise ImageError(str(e).replace(str(path), "the uploaded image")) from None


class TooLarge(ConvsightError):
    """The upload is over the size cap (answered 413)."""


class Disconnected(ConvsightError):
    """The client went away before sending the whole body (nobody is left to answer)."""


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"upload larger than {max_bytes / 1e6:g} MB")


async def read_capped_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with :class:`TooLarge` the moment it passes ``max_bytes + ENVELOPE_BYTES``."""
    limit = max_bytes + ENVELOPE_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(max_bytes)  # refused before a single body byte is read
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large(max_bytes)
    except ClientDisconnect:
        raise Disconnected("the client disconnected mid-upload") from None
    return bytes(body)


async def parse_form(request: Request, body: bytes, max_bytes: int, max_files: int = 1) -> tuple[dict[str, str], list[bytes]]:
    """The text fields and the file parts' bytes (in order) of an already capped multipart ``body``."""
    sent = False

    async def replay() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise ConvsightError("send the image as multipart/form-data with a 'file' field")
    try:
        form = await Request(request.scope, replay).form(max_files=max_files, max_fields=4, max_part_size=ENVELOPE_BYTES)
    except Exception as e:  # noqa: BLE001 - starlette's own parse errors; the user gets one line
        raise ConvsightError(f"malformed multipart upload: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        fields: dict[str, str] = {}
        files: list[bytes] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.append(await value.read(max_bytes + 1))
                if sum(map(len, files)) > max_bytes:
                    raise too_large(max_bytes)
            else:
                fields[key] = value
        return fields, files
    finally:
        await form.close()  # the spooled part files, on every path


async def parse_upload(request: Request, body: bytes, max_bytes: int) -> tuple[bytes, str]:
    """The ``file`` part's bytes and the ``task`` field (default detect) of a capped multipart ``body``."""
    fields, files = await parse_form(request, body, max_bytes, max_files=1)
    if not files:
        raise ConvsightError("the upload has no 'file' field")
    return files[0], fields.get("task", "detect")
