"""How an error becomes an HTTP answer, written once for both ASGI apps and their middleware.

The prediction server (``serving/app.py``) and the control plane (``server/app.py``) install
the same handlers, so one error has one JSON shape and one name everywhere:
``{"error": <class name>, "message": <one line>, "field"?: <where>}``. A ``ModelyardError``
answers with its own ``http_status``; request validation is an ``InvalidRequestError``
naming the field path; an unknown route or method the framework's status as ``HTTPError``;
anything else a logged 500 ``InternalError`` without a traceback in the answer. Raw ASGI
middleware (auth, body limits, the predict fast path) answers through ``send_error``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from modelyard._validation import join_path
from modelyard.errors import InvalidRequestError, ModelyardError, QueueFullError, UnauthorizedError

if TYPE_CHECKING:  # FastAPI comes with the `serve` extra; raw ASGI code here does not need it
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError

__all__ = ["error_answer", "send_error", "invalid_request", "add_error_handlers"]

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]


def error_answer(exc: ModelyardError) -> tuple[int, Headers, bytes]:
    """Status, extra headers and JSON body of ``exc``; a server-side fault is logged."""
    headers: Headers = []
    if isinstance(exc, QueueFullError):
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    if isinstance(exc, UnauthorizedError):
        headers.append((b"www-authenticate", b"Bearer"))
    if exc.http_status >= 500 and not isinstance(exc, QueueFullError):  # a full queue is load, not a fault
        log.error("%s: %s", type(exc).__name__, exc.message)
    return exc.http_status, headers, json.dumps(exc.to_dict()).encode()


async def send_error(send: Any, exc: ModelyardError, *, status: int | None = None, headers: Headers = ()) -> None:
    """Answer ``exc`` from raw ASGI code (``status`` overrides the class's own; ``headers`` are added)."""
    own, extra, body = error_answer(exc)
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra, *headers]
    await send({"type": "http.response.start", "status": status or own, "headers": start})
    await send({"type": "http.response.body", "body": body})


def invalid_request(exc: RequestValidationError) -> InvalidRequestError:
    """The first problem FastAPI found in a request, as one line naming its field path."""
    err = exc.errors()[0]
    where = join_path("", [p for p in err.get("loc", ()) if p != "body"]) or "body"
    message = f"Invalid value for `{where}`: {err.get('msg', 'invalid')}"
    if "input" in err and err.get("type") != "missing":
        message += f", received {str(err['input'])[:80]!r}"
    return InvalidRequestError(message, field=where)


def add_error_handlers(app: FastAPI) -> None:
    """Install the one set of error handlers on ``app``."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def modelyard_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelyardError)
        status, headers, body = error_answer(exc)
        return Response(
            body,
            status_code=status,
            media_type="application/json",
            headers={k.decode(): v.decode() for k, v in headers},
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return await modelyard_error(request, invalid_request(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = f"{exc.detail} ({request.method} {request.url.path}); see /docs for the routes"
        return JSONResponse(
            {"error": "HTTPError", "message": message}, status_code=exc.status_code, headers=exc.headers
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "error": "InternalError",
                "message": f"internal error ({type(exc).__name__}); the server log has the details",
            },
            status_code=500,
        )

    app.add_exception_handler(ModelyardError, modelyard_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
