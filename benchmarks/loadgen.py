"""A bounded closed-loop HTTP/1.1 load generator for 127.0.0.1.

``clients`` keep-alive connections each send one request, wait for the full response,
and send the next, for ``warmup + seconds`` seconds; only responses that started after
the warm-up count. Requests are pre-built bytes and responses are parsed by hand on
asyncio streams (uvloop when installed), so the generator spends a few tens of
microseconds per request and does not become the bottleneck it measures; it runs in its
own process, apart from the server under test.

``probes``: named functions returning a running total (the server's CPU seconds so far, a
counter it exports); each is read when the measured window opens and when it closes, and
``Result.per_request(name)`` is its increase per answered request. The server's CPU time per
request moves far less with other processes' load on a shared machine than requests/s.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Result", "run_load", "build_request"]


@dataclass
class Result:
    clients: int
    seconds: float
    ok: int
    errors: int
    latencies_ms: list[float]
    spent: dict[str, float] = field(default_factory=dict)  # each probe's increase over the measured window

    def per_request(self, probe: str) -> float | None:
        """A probe's increase per answered request, in millionths (CPU seconds: microseconds)."""
        return self.spent[probe] / self.ok * 1e6 if probe in self.spent and self.ok else None

    @property
    def cpu_us(self) -> float | None:
        """The server's CPU microseconds per answered request (the ``server`` probe)."""
        return self.per_request("server")

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


def build_request(path: str, body: bytes, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status code and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, not close


async def _client(
    port: int,
    requests: list[bytes],
    offset: int,
    warm_until: float,
    stop_at: float,
    latencies: list[float],
    counts: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while True:
            start = time.perf_counter()
            if start >= stop_at:
                return
            writer.write(requests[i % len(requests)])
            i += 1
            try:
                status, keep = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                status, keep = 0, False
            end = time.perf_counter()
            if start >= warm_until:
                if status == 200:
                    latencies.append((end - start) * 1000)
                    counts[0] += 1
                else:
                    counts[1] += 1
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _probe_over(probes: dict[str, Callable[[], float]], warm_until: float, stop_at: float, out: dict) -> None:
    await asyncio.sleep(max(0.0, warm_until - time.perf_counter()))
    start = {name: read() for name, read in probes.items()}
    await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
    out.update({name: read() - start[name] for name, read in probes.items()})


async def _run(
    port: int,
    requests: list[bytes],
    clients: int,
    warmup: float,
    seconds: float,
    probes: dict[str, Callable[[], float]] | None,
) -> Result:
    now = time.perf_counter()
    warm_until, stop_at = now + warmup, now + warmup + seconds
    latencies: list[float] = []
    counts = [0, 0]  # ok, errors
    spent: dict[str, float] = {}
    watch = [_probe_over(probes, warm_until, stop_at, spent)] if probes else []
    await asyncio.gather(
        *(_client(port, requests, k, warm_until, stop_at, latencies, counts) for k in range(clients)), *watch
    )
    return Result(clients=clients, seconds=seconds, ok=counts[0], errors=counts[1], latencies_ms=latencies, spent=spent)


def run_load(
    port: int,
    requests: list[bytes],
    clients: int,
    *,
    warmup: float = 1.0,
    seconds: float = 4.0,
    probes: dict[str, Callable[[], float]] | None = None,
) -> Result:
    """Closed-loop load from ``clients`` connections; bounded to ``warmup + seconds`` (+ the last replies)."""
    try:
        import uvloop

        return uvloop.run(_run(port, requests, clients, warmup, seconds, probes))
    except ImportError:
        return asyncio.run(_run(port, requests, clients, warmup, seconds, probes))
