"""Reading a request body with a size limit, for every route of the control plane that takes one.

A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked
body is cut off at the first chunk past it. Either way the answer is a 413 naming ``body``.

``load_json`` is the strict JSON of such a body: Python's ``json.loads`` alone accepts
NaN/Infinity, raises a bare ValueError for an integer of more than 4,300 digits (its
int-to-str guard) and a RecursionError for deep nesting; each of those became a 500.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from modelyard.errors import BodyTooLargeError, ModelyardError

__all__ = ["read_body", "too_large", "load_json"]


def too_large(what: str, limit: int, received: int | None) -> BodyTooLargeError:
    """The 413 for a body of ``received`` bytes (None: a stream cut off past ``limit``)."""
    got = f"more than {limit}" if received is None else str(received)
    return BodyTooLargeError(f"{what} too large: expected at most {limit} bytes, received {got}", field="body")


async def read_body(request: Request, limit: int, *, what: str = "Request body") -> bytes:
    """The whole body of ``request``, at most ``limit`` bytes (``what`` names it in the error)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(what, limit, int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(what, limit, None)
        chunks.append(chunk)
    return b"".join(chunks)


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(f"expected finite numbers (strict JSON has no NaN or Infinity), received {name}")


def load_json(raw: bytes | str, error: type[ModelyardError], what: str = "JSON body") -> Any:
    """The document in ``raw``, or ``error`` (a 4xx naming ``body``) saying what is wrong with it."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise error(
            f"Invalid {what}: expected UTF-8 text, received byte 0x{raw[exc.start]:02x}", field="body"
        ) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise error(f"Malformed {what} at line {exc.lineno}, column {exc.colno}: {exc.msg}", field="body") from None
    except RecursionError:
        raise error(f"Invalid {what}: nested too deeply", field="body") from None
    except ValueError as exc:  # NaN/Infinity, or Python's guard against integers of more than 4,300 digits
        reason = str(exc) if isinstance(exc, _NonFinite) else "expected integers of at most 4,300 digits"
        raise error(f"Invalid number in the {what}: {reason}", field="body") from None
