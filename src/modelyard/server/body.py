"""Reading a request body with a size limit, for every route of the control plane that takes one.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked
body is cut off at the first chunk past it. Either way the answer is a 413 naming ``body``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from modelyard.errors import BodyTooLargeError

__all__ = ["check_declared", "read_body", "stream_body", "too_large"]


def too_large(what: str, limit: int, received: int | None) -> BodyTooLargeError:
    """The 413 for a body of ``received`` bytes (None: a stream cut off past ``limit``)."""
    got = f"more than {limit}" if received is None else str(received)
    return BodyTooLargeError(f"{what} too large: expected at most {limit} bytes, received {got}", field="body")


def check_declared(request: Request, limit: int, *, what: str = "Request body") -> None:
    """Refuse a declared ``Content-Length`` over ``limit`` before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(what, limit, int(declared))


async def stream_body(request: Request, limit: int, *, what: str = "Request body") -> AsyncIterator[bytes]:
    """The chunks of ``request``'s body, cut off with a 413 at the first one past ``limit`` bytes."""
    check_declared(request, limit, what=what)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(what, limit, None)
        yield chunk


async def read_body(request: Request, limit: int, *, what: str = "Request body") -> bytes:
    """The whole body of ``request``, at most ``limit`` bytes (``what`` names it in the error)."""
    return b"".join([chunk async for chunk in stream_body(request, limit, what=what)])
