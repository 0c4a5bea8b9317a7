"""Whether a server can listen on its address, asked before it loads anything or announces itself."""

from __future__ import annotations

import errno
import socket

from modelyard.errors import InputError

__all__ = ["check_port"]


def check_port(host: str, port: int, field: str) -> None:
    """A taken port is a one-line error now, not a uvicorn log line after the address was printed."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind((bare, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise InputError(
                f"Invalid value for `{field}`: {host}:{port} {why}; pick another with --port (or --host)", field=field
            ) from None
