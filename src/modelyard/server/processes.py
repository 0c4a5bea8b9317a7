"""Stopping child processes of the server (training workers, serving replicas) within a grace period."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterable

__all__ = ["stop_processes"]

log = logging.getLogger(__name__)


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], grace_s: float, what: str) -> None:
    """SIGTERM every process still running, then SIGKILL those not gone ``grace_s`` after (one deadline for all).

    SIGTERM first so each can finish cleanly (a worker hands its job back, a replica drains
    its requests); ``what`` names them in the log ("training worker", "replica").
    """
    live = [proc for proc in procs if proc.poll() is None]
    for proc in live:
        proc.terminate()
    deadline = time.monotonic() + grace_s
    for proc in live:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s pid %d ignored SIGTERM for %.0f s; killing it", what, proc.pid, grace_s)
            proc.kill()
            proc.wait(10)
