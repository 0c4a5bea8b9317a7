"""Raw-socket checks that a server process closes slow clients (slowloris). Holds no tests itself."""

from __future__ import annotations

import socket
import time


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection, None if it was still open after ``seconds``."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def assert_slow_clients_are_closed(port: int, seconds: float) -> None:
    """Partial headers held open (slowloris), on a new connection and on a kept-alive one, are cut off."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
        waited = _closed_within(sock, seconds + 4)
        assert waited is not None and waited >= seconds * 0.8, waited
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b" 200 " in sock.recv(4096)
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127"):  # trickled: one piece, then silence
            sock.sendall(piece)
            time.sleep(0.3)
        assert _closed_within(sock, seconds + 4) is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:  # a normal client is unaffected
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b" 200 " in sock.recv(4096)
