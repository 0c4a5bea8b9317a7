"""One supervised serving process: ``python -m modelyard serve REF`` on a free local port.

A ``Replica`` is a small state machine the supervisor steps about once a second:

    starting ──/readyz 200──► running ──exit or 3 missed /healthz──► backoff ──delay──► starting
        └── exit / not ready in time ──► backoff            (too many failures in a row) ──► failed

Backoff doubles from 1 s up to 30 s; a replica that stayed healthy for a minute starts
again from 1 s. Each replica gets a per-supervisor API key in ``MODELYARD_API_KEY``, so
only the control plane (which proxies predictions and scrapes ``/metrics`` with it) can
use the process; its probes stay open. Output goes to a log file whose last ``error:``
line becomes the replica's error (the serve CLI prints one line per failure).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelyard.server.deployments.metrics import MetricWindow, Sample, parse_sample
from modelyard.server.processes import stop_processes
from modelyard.serving.config import WEBHOOK_TOKEN_ENV

__all__ = ["ReplicaConfig", "Replica", "free_port", "stop_all", "stop_orphan"]

log = logging.getLogger(__name__)

_LOG_LIMIT = 5 * 1024 * 1024


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (a race is caught: the replica exits, is restarted)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ReplicaConfig:
    """What every replica of one deployment runs with."""

    ref: str
    home: Path
    api_key: str
    host: str = "127.0.0.1"
    # `modelyard serve` settings; None: serve's own default (ServeConfig holds every default).
    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    backend: str | None = None
    monitor_sample: float | None = None
    monitor_window: int | None = None
    monitor_capacity: int | None = None
    monitor_webhook: str | None = None  # where the replica POSTs its alerts (a deployment with `retrain`)
    webhook_token: str | None = None  # sent with them; passed in the environment, never on the command line
    log_dir: Path | None = None
    data_dirs: tuple[str, ...] = ()  # the control plane's data folders: all a replica may read
    max_data_mb: int | None = None
    startup_timeout_s: float = 120.0
    max_failures: int = 5  # failures in a row before the replica is given up
    backoff_s: tuple[float, float] = (1.0, 30.0)
    stable_s: float = 60.0  # healthy this long: the failure count starts over
    health_misses: int = 3

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "modelyard",
            "--home",
            str(self.home),
            "serve",
            self.ref,
            "--host",
            self.host,
            "--port",
            str(port),
            *_flags(
                max_batch_size=self.max_batch_size,
                max_wait_ms=self.max_wait_ms,
                backend=self.backend,
                monitor_sample=self.monitor_sample,
                monitor_window=self.monitor_window,
                monitor_capacity=self.monitor_capacity,
                monitor_webhook=self.monitor_webhook,
                max_data_mb=self.max_data_mb,
            ),
            "--log-level",
            "warning",
            "--confine-data",
            *(arg for folder in self.data_dirs for arg in ("--data-dir", folder)),
        ]


def _flags(**settings: Any) -> list[str]:
    """``--max-batch-size 64 ...`` for the settings that are set."""
    return [arg for k, v in settings.items() if v is not None for arg in (f"--{k.replace('_', '-')}", str(v))]


@dataclass
class Replica:
    """One process slot of a deployment; the process behind it changes on each restart."""

    index: int
    config: ReplicaConfig
    state: str = "starting"
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    restarts: int = 0
    failures: int = 0
    error: str | None = None
    launched_at: float = 0.0
    ready_at: float | None = None
    next_start_at: float = 0.0
    misses: int = 0
    metrics: MetricWindow = field(default_factory=MetricWindow)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return None if self.config.log_dir is None else self.config.log_dir / f"replica-{self.index}.log"

    def launch(self, now: float) -> None:
        self.port = free_port(self.config.host)
        env = {**os.environ, "MODELYARD_HOME": str(self.config.home), "MODELYARD_API_KEY": self.config.api_key}
        env.pop("MODELYARD_SERVE_REFS", None)
        env.pop(WEBHOOK_TOKEN_ENV, None)
        if self.config.webhook_token is not None:
            env[WEBHOOK_TOKEN_ENV] = self.config.webhook_token
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            if self.log_path.is_file() and self.log_path.stat().st_size > _LOG_LIMIT:  # keep one old log
                self.log_path.replace(self.log_path.with_suffix(".log.1"))
            out = self.log_path.open("ab")
        self.state, self.launched_at, self.ready_at, self.misses = "starting", now, None, 0
        self.metrics = MetricWindow()
        try:
            self.proc = subprocess.Popen(
                self.config.command(self.port), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        except OSError as exc:  # no such interpreter, out of processes: counts as a failure
            self._failed(now, f"could not start: {exc}")
            return
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        log.info("replica %d of %s: pid %d on port %d", self.index, self.config.ref, self.proc.pid, self.port)

    def step(self, http: httpx.Client, now: float) -> None:
        """Advance the state machine by one poll."""
        if self.state in ("failed", "stopped"):
            return
        if self.state == "backoff":
            if now >= self.next_start_at:
                self.restarts += 1
                self.launch(now)
            return
        code = self.proc.poll() if self.proc is not None else -1
        if code is not None:
            self._failed(now, f"exited with status {code}")
        elif self.state == "starting":
            if self._probe(http, "/readyz"):
                self.state, self.ready_at, self.error = "running", now, None
            elif now - self.launched_at > self.config.startup_timeout_s:
                self._kill()
                self._failed(now, f"not ready after {self.config.startup_timeout_s:g} s")
        else:  # running
            if self._probe(http, "/healthz"):
                self.misses = 0
                if self.ready_at is not None and now - self.ready_at > self.config.stable_s:
                    self.failures = 0
            else:
                self.misses += 1
                if self.misses >= self.config.health_misses:
                    self._kill()
                    self._failed(now, f"no answer from /healthz {self.misses} times in a row")

    def scrape(self, http: httpx.Client, now: float) -> None:
        """Add one ``/metrics`` sample to this replica's window (running replicas only)."""
        if self.state != "running":
            return
        try:
            r = http.get(f"{self.base_url}/metrics", headers={"authorization": f"Bearer {self.config.api_key}"})
            if r.status_code == 200:
                if self.metrics.latest is None and self.ready_at is not None:
                    # Counters start at zero with the process and no request is served before
                    # it is ready: requests before the first scrape still count in the window.
                    self.metrics.add(Sample(t=min(self.ready_at, now)))
                self.metrics.add(parse_sample(r.text, now))
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("scraping replica %d of %s failed: %s", self.index, self.config.ref, exc)

    def _probe(self, http: httpx.Client, path: str) -> bool:
        try:
            return http.get(f"{self.base_url}{path}").status_code == 200
        except httpx.HTTPError:
            return False

    def _failed(self, now: float, why: str) -> None:
        detail = self._last_error()
        self.error = f"{why}: {detail}" if detail else why
        self.failures += 1
        self.proc, self.ready_at = None, None
        if self.failures >= self.config.max_failures:
            self.state = "failed"
            self.error = f"gave up after {self.failures} failures in a row; last: {self.error}"
            log.warning("replica %d of %s failed: %s", self.index, self.config.ref, self.error)
            return
        low, high = self.config.backoff_s
        self.state, self.next_start_at = "backoff", now + min(high, low * 2 ** (self.failures - 1))
        log.warning(
            "replica %d of %s: %s; restarting in %.0f s",
            self.index,
            self.config.ref,
            self.error,
            self.next_start_at - now,
        )

    def _last_error(self) -> str | None:
        """The last `error:` line (or last line) the process wrote, for the user to read."""
        path = self.log_path
        if path is None or not path.is_file():
            return None
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        text = (errors or lines or [""])[-1].removeprefix("error:").strip()
        return text[:300] or None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def describe(self, now: float) -> dict[str, Any]:
        alive = self.proc is not None and self.proc.poll() is None
        return {
            "index": self.index,
            "state": self.state,
            "pid": self.proc.pid if alive else None,
            "port": self.port if alive else None,
            "restarts": self.restarts,
            "error": self.error,
            "requests_total": int(self.metrics.latest.requests) if self.metrics.latest else 0,
            "uptime_s": round(now - self.ready_at, 1) if self.state == "running" and self.ready_at else None,
        }


def stop_all(replicas: Iterable[Replica], grace_s: float = 10.0) -> None:
    """SIGTERM every process (they drain in-flight requests), SIGKILL those left after ``grace_s``."""
    procs = []
    for replica in replicas:
        replica.state = "stopped"
        if replica.proc is not None:
            procs.append(replica.proc)
        replica.proc = None
    stop_processes(procs, grace_s, "replica")


def stop_orphan(pid: int, port: int) -> bool:
    """SIGTERM a replica left running by a server that died, if ``pid`` still is one.

    Only a process whose command line is ``... modelyard ... serve ... --port PORT`` is
    touched (a recycled pid belongs to someone else). Linux only (reads /proc).
    """
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [a.decode("utf-8", "replace") for a in argv]
    if "modelyard" not in words or "serve" not in words or str(port) not in words:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return False
    log.info("stopped replica pid %d (port %d) left by an earlier server", pid, port)
    return True
