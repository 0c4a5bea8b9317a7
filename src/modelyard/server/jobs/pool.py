"""The pool of training worker processes, kept at its size while the server runs.

Workers are fresh interpreters (``python -m modelyard.server.jobs.worker``), not forks of the
server: a fork would inherit the server's threads, sockets and SQLite connections. A
worker that dies is started again (with a growing pause if it keeps dying at start-up);
its job, if it had one, is reaped once the lease runs out and resumed by any worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from modelyard.server.config import ServerConfig
from modelyard.server.processes import stop_processes

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)

_QUICK_DEATH_S = 10.0  # dying sooner than this after start counts as a crash loop
_MAX_BACKOFF_S = 30.0


@dataclass
class _Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0
    not_before: float = 0.0
    out: IO[bytes] | None = field(default=None, repr=False)


class WorkerPool:
    """``config.workers`` worker processes over the store at ``home``."""

    def __init__(self, config: ServerConfig, home: Path, *, poll_s: float = 0.5) -> None:
        self.config, self.home, self.poll_s = config, home, poll_s
        self.slots = [_Slot(i) for i in range(config.workers)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        c = self.config
        return [
            sys.executable,
            "-m",
            "modelyard.server.jobs.worker",
            "--home",
            str(self.home),
            "--lease-s",
            repr(c.lease_s),
            "--heartbeat-s",
            repr(c.heartbeat_s),
            "--parent-pid",
            str(os.getpid()),
            "--max-data-mb",
            str(c.max_data_mb),
            *(arg for folder in c.data_dirs for arg in ("--data-dir", str(folder))),
        ]

    def start(self) -> None:
        with self._lock:
            for slot in self.slots:
                self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, name="worker-pool", daemon=True)
        self._thread.start()

    def _spawn(self, slot: _Slot) -> None:
        folder = self.home / "server" / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        if slot.out is not None:
            slot.out.close()
        slot.out = (folder / f"worker-{slot.index}.log").open("ab")
        slot.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=slot.out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        slot.started = time.monotonic()
        log.info("started training worker %d (pid %d)", slot.index, slot.proc.pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            with self._lock:
                if self._stop.is_set():
                    return
                for slot in self.slots:
                    self._check(slot)

    def _check(self, slot: _Slot) -> None:
        now = time.monotonic()
        if slot.proc is not None:
            code = slot.proc.poll()
            if code is None:
                return
            lived = now - slot.started
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            log.warning(
                "training worker %d (pid %d) died after %.0f s (%s); starting another; "
                "its job resumes once its lease expires",
                slot.index,
                slot.proc.pid,
                lived,
                how,
            )
            slot.quick_deaths = slot.quick_deaths + 1 if lived < _QUICK_DEATH_S else 0
            slot.not_before = now + (min(_MAX_BACKOFF_S, 2.0 ** (slot.quick_deaths - 1)) if slot.quick_deaths else 0.0)
            slot.proc = None
        if now >= slot.not_before:
            slot.restarts += 1
            self._spawn(slot)

    def pids(self) -> list[int]:
        with self._lock:
            return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "slot": s.index,
                    "pid": s.proc.pid if s.proc is not None else None,
                    "alive": s.proc is not None and s.proc.poll() is None,
                    "restarts": s.restarts,
                }
                for s in self.slots
            ]

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM every worker (a running job goes back to the queue), SIGKILL after ``grace_s``."""
        self._stop.set()
        with self._lock:
            stop_processes([s.proc for s in self.slots if s.proc is not None], grace_s, "training worker")
            for slot in self.slots:
                if slot.out is not None:
                    slot.out.close()
                    slot.out = None
        if self._thread is not None:
            self._thread.join(timeout=5)
