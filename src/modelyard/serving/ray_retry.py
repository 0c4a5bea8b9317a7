"""Ray Serve's HTTP proxy retries an idempotent request whose replica died before answering.

Ray Serve routes a request again only while it is being assigned; once a replica has taken
it and dies (killed, out of memory, node lost), the proxy ends the request with an empty 500.
``RetryDeadReplica`` is an ASGI middleware that runs in the proxy, in front of it: it keeps the
body of an idempotent request (GET/HEAD, or a POST to a ``predict``, ``explain`` or ``embed``
route, which have no side effects), and when the proxy finished without starting an answer
it sends the same request again (Ray's router has marked the dead replica by then and picks
another); such an answer carries ``x-modelyard-retries: N``. A client that disconnected is not retried; a body over ``max_body_bytes`` is passed
through unbuffered and not retried; after ``attempts`` tries the answer is a one-line 503.

The other half runs in each replica. When Ray's router moves a request off a replica that died
after it had pulled the request's body from the proxy, the next replica never gets that body
and would wait for it until the client gives up (seen with Ray 2.60: a 60 s hang, then 499).
``BodyDeadline`` reads the body before the modelyard app sees it; when it is not complete within
``body_timeout_s`` (the proxy holds the whole body by then, so this means it was lost), the
replica answers a 503 marked ``x-modelyard-body-lost``, which ``RetryDeadReplica`` does not pass
on but sends again.

``deploy`` installs it through Ray Serve's proxy callback
(``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` → ``proxy_middlewares``), set in the Serve
controller's environment, which the proxy actors inherit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from modelyard.errors import DeploymentUnavailableError
from modelyard.http_errors import send_error

__all__ = ["RetryDeadReplica", "BodyDeadline", "proxy_middlewares", "CALLBACK_ENV", "CALLBACK_PATH", "RETRIES_HEADER"]

log = logging.getLogger(__name__)

CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK_PATH = "modelyard.serving.ray_retry:proxy_middlewares"
BODY_LOST_HEADER = b"x-modelyard-body-lost"  # a replica's answer to a request whose body never came
RETRIES_HEADER = b"x-modelyard-retries"  # on an answer that needed retries: how many
_IDEMPOTENT_POSTS = ("/predict", "/explain", "/embed")

Scope = dict[str, Any]
Message = dict[str, Any]


def _idempotent(scope: Scope) -> bool:
    method = scope.get("method", "")
    return method in ("GET", "HEAD") or (method == "POST" and scope.get("path", "").endswith(_IDEMPOTENT_POSTS))


class RetryDeadReplica:
    """Resend an idempotent request the proxy could not answer (its replica died)."""

    def __init__(self, app: Any, attempts: int = 4, delay_s: float = 0.25, max_body_bytes: int = 8 * 1024 * 1024):
        self.app, self.attempts, self.delay_s, self.max_body_bytes = app, attempts, delay_s, max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _idempotent(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body", False):
                break
            if size > self.max_body_bytes:  # too big to keep: one try, the rest of the body streamed through
                await self.app(scope, _Replay(chunks, receive, more=True), send)
                return
        body = b"".join(chunks)
        for attempt in range(1, self.attempts + 1):
            tracked = _Tracked(send, attempt - 1)
            replay = _Replay([body], receive)
            # A fresh copy: the proxy's own middleware adds a request id to the headers.
            await self.app(dict(scope, headers=list(scope.get("headers", []))), replay, tracked)
            if (tracked.started and not tracked.lost) or replay.disconnected:
                return
            log.warning(
                "%s %s: no answer from the replica (try %d of %d)",
                scope["method"],
                scope["path"],
                attempt,
                self.attempts,
            )
            if attempt < self.attempts:
                await asyncio.sleep(self.delay_s * attempt)
        message = f"No replica answered {scope['method']} {scope['path']} ({self.attempts} tries); retry shortly"
        await send_error(send, DeploymentUnavailableError(message))


class _Tracked:
    """``send`` that notes whether an answer was started, and says how many tries went before it."""

    def __init__(self, send: Any, retries: int) -> None:
        self.send, self.retries, self.started, self.lost = send, retries, False, False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.lost = any(name == BODY_LOST_HEADER for name, _ in message.get("headers", []))
        if self.lost:  # the replica never got the body: this answer is not the client's, the next try is
            return
        if message["type"] == "http.response.start":
            if self.retries:
                message = dict(
                    message, headers=[*message.get("headers", []), (RETRIES_HEADER, str(self.retries).encode())]
                )
        await self.send(message)


class _Replay:
    """``receive`` that gives the kept body first, then the client's own messages (its disconnect)."""

    def __init__(self, chunks: list[bytes], receive: Any, *, more: bool = False) -> None:
        self.chunks, self.receive, self.more, self.disconnected = list(chunks), receive, more, False

    async def __call__(self) -> Message:
        if self.chunks:
            body = self.chunks.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(self.chunks) or self.more}
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message


class BodyDeadline:
    """In a replica, in front of the modelyard app: a retryable request's whole body within
    ``body_timeout_s``, or a marked 503 that ``RetryDeadReplica`` retries.

    Only the requests the proxy keeps and resends (``_idempotent``, bodies up to
    ``max_body_bytes``) are held to the deadline; any other request, and a body past that size,
    goes to the app as it streams in, so its own limits (413, auth) answer it and no client ever
    sees the marked 503. At most ``max_body_bytes`` are buffered here.
    """

    def __init__(self, app: Any, body_timeout_s: float = 3.0, max_body_bytes: int = 8 * 1024 * 1024) -> None:
        self.app, self.body_timeout_s, self.max_body_bytes = app, body_timeout_s, max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _idempotent(scope):
            await self.app(scope, receive, send)
            return
        try:
            read = await asyncio.wait_for(_read_body(receive, self.max_body_bytes), self.body_timeout_s)
        except asyncio.TimeoutError:  # TimeoutError itself only from Python 3.11
            message = (
                f"The body of {scope['method']} {scope['path']} did not reach this replica in {self.body_timeout_s:g} s"
            )
            await send_error(send, DeploymentUnavailableError(message), headers=[(BODY_LOST_HEADER, b"1")])
            return
        if read is None:  # the client went away
            return
        chunks, complete = read
        if complete:
            await self.app(scope, _Replay([b"".join(chunks)], receive), send)
        else:  # past the size the proxy retries: the rest streams through to the app's own limit
            await self.app(scope, _Replay(chunks, receive, more=True), send)


async def _read_body(receive: Any, limit: int) -> tuple[list[bytes], bool] | None:
    """The body's chunks and whether they are all of it (False once more than ``limit`` bytes came)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False):
            return chunks, True
        if size > limit:
            return chunks, False


def proxy_middlewares() -> list[Any]:
    """Ray Serve's HTTP proxy callback: the middlewares its proxy wraps itself in."""
    from starlette.middleware import Middleware

    return [Middleware(RetryDeadReplica)]
