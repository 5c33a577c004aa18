"""Every failure of the web API as one JSON line: ``{"error": "..."}`` with the status it deserves."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from convsight.errors import ConvsightError
from convsight.faces.pipeline import FaceCountError
from convsight.web.pool import Busy, InferencePool, TooSlow
from convsight.web.upload import Disconnected, NotAnImage, TooLarge


class Forbidden(ConvsightError):
    """Not allowed from here, whatever the token (403)."""


class Unauthorised(ConvsightError):
    """The token is missing or wrong (401)."""


class NotFound(ConvsightError):
    """The named thing does not exist (404)."""


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status, headers=headers)


def error_response(e: ConvsightError, pool: InferencePool) -> JSONResponse:
    """The answer for a ConvsightError raised while serving a request."""
    if isinstance(e, TooLarge):
        return error(413, str(e), {"Connection": "close"})  # the rest of the body is never read
    if isinstance(e, Busy):
        return error(503, str(e), {"Retry-After": str(pool.retry_after())})
    if isinstance(e, Unauthorised):
        return error(401, str(e), {"WWW-Authenticate": "Bearer"})
    status = {TooSlow: 504, NotAnImage: 415, Forbidden: 403, NotFound: 404, Disconnected: 400,
              FaceCountError: 422}.get(type(e), 400)
    return error(status, str(e))
