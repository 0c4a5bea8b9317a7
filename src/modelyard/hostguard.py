"""The Host and Origin rule both HTTP servers apply (DNS-rebinding and cross-origin guard).

A web page can make a browser send requests to a loopback server through a name it controls
and later re-points at 127.0.0.1 ("DNS rebinding"); the request then carries that name in its
Host header. So a server answers only to the names it is known by: the bound host,
``localhost``, ``127.0.0.1``, ``[::1]``, this machine's own names on a wildcard bind, and
the names the operator allows (``--allowed-host``). Used by the control plane's auth
middleware (``modelyard server``) and by the prediction server (``modelyard serve``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from modelyard.errors import InvalidHostError
from modelyard.http_errors import send_error

__all__ = ["WILDCARD_HOSTS", "HostGuard", "HostCheckMiddleware", "is_loopback", "split_host"]

# Binding to these listens on every interface of the machine.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; any other name or address is public."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere: treat it as public


def split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` / ``[v6]:port`` → (lower-case host, port or None; -1 for a bad port)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value.partition("]")
        host += "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    if port_text and not port_text.isdigit():
        return host, -1
    return host, int(port_text) if port_text else None


def _local_names() -> set[str]:
    """This machine's names and addresses (a wildcard bind is reached by any of them)."""
    names: set[str] = set()
    try:
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        for info in socket.getaddrinfo(hostname, None):
            address = str(info[4][0]).split("%")[0]
            names.add(f"[{address}]" if ":" in address else address)
    except OSError:
        pass
    return names


class HostGuard:
    """Which Host headers and Origins name this server (bound ``host``:``port``).

    ``port`` 0 (an ephemeral port picked at bind time) accepts the allowed names on any port.
    ``allowed_hosts`` entries match a whole Host header value or its name without the port.
    """

    def __init__(self, host: str, port: int, allowed_hosts: Iterable[str] = ()) -> None:
        self.host, self.port = host, port
        self.allowed = {h.strip().lower() for h in allowed_hosts if h.strip()}
        names = {"localhost", "127.0.0.1", "[::1]", host.lower(), *self.allowed}
        if ":" in host and not host.startswith("["):
            names.add(f"[{host.lower()}]")
        if host in WILDCARD_HOSTS:
            names |= _local_names()
        self.names = names

    def url(self) -> str:
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def _port_ok(self, port: int | None, default: int | None) -> bool:
        port = default if port is None else port
        return self.port == 0 or port is None or port == self.port

    def host_ok(self, value: str | None) -> bool:
        if not value:
            return False
        if value.strip().lower() in self.allowed:
            return True
        name, port = split_host(value)
        return name in self.names and port != -1 and self._port_ok(port, None)

    def origin_ok(self, origin: str, allowed_origins: Iterable[str] = ()) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if origin in allowed_origins:
            return True
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or "/" in rest:
            return False
        name, port = split_host(rest)
        return name in self.names and port != -1 and self._port_ok(port, 443 if scheme == "https" else 80)

    def refusal(self, value: str | None) -> str:
        return (
            f"Invalid Host header {value!r}: this server answers to {self.url()} "
            "(add the name with --allowed-host if it is reached by another)"
        )


class HostCheckMiddleware:
    """Pure ASGI: a request whose Host header does not name the server gets a 400, nothing else runs."""

    def __init__(self, app: Any, guard: HostGuard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"host"), None)
            if not self.guard.host_ok(host):
                await send_error(send, InvalidHostError(self.guard.refusal(host)))
                return
        await self.app(scope, receive, send)
