"""A deadline for a request's headers: slow clients ("slowloris") cannot hold connections open.

uvicorn times out idle keep-alive connections but not a connection that has started a request
and trickles its headers (or never finishes them): each such connection holds a socket and a
protocol object for as long as the client likes. These protocol classes, given to uvicorn as
``Config(http=...)``, close a connection whose request headers are not complete within
``header_timeout_s`` of the connection opening or of the request's first byte.

The deadline travels in an environment variable so that uvicorn's spawned worker processes
(``workers > 1``) get it too.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

__all__ = ["HEADER_TIMEOUT_ENV", "protocol_class"]

HEADER_TIMEOUT_ENV = "MODELYARD_SERVE_HEADER_TIMEOUT_S"


class _HeaderDeadline:
    """Mixed into a uvicorn HTTP protocol: arm when a request may start, disarm when its headers are in."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        seconds = float(os.environ.get(HEADER_TIMEOUT_ENV, "10"))
        self._header_timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402  (imported by serving.server.run only)


class H11WithHeaderTimeout(_HeaderDeadline, H11Protocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None and self._header_timer is None:  # the first bytes of a new request
            self._arm()
        super().data_received(data)
        if self.cycle is not None:  # h11 handed over a complete request head
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: uvicorn would pick h11 too
    HttpToolsProtocol = None


if HttpToolsProtocol is not None:

    class HttpToolsWithHeaderTimeout(_HeaderDeadline, HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)


def protocol_class() -> type:
    """uvicorn's own choice (httptools when installed, else h11) with the header deadline.

    Module-level classes: uvicorn pickles its config into spawned worker processes.
    """
    return HttpToolsWithHeaderTimeout if HttpToolsProtocol is not None else H11WithHeaderTimeout
