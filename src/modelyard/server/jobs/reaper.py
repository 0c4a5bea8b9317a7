"""The reaper: no job stays ``running`` after its worker is gone.

Every ``reap_interval_s`` it looks for running jobs whose lease expired (the worker was
killed, hung, or the server that owned it died). Such a job goes back to the queue while
it has attempts left, otherwise it fails with the reason; its run is marked failed in
the same transaction, so the next attempt resumes it from its last good checkpoint.
This is the only place a job is taken from a worker, so the rule is the same after a
SIGKILL and after a restart.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from modelyard.server.jobs.leases import Leases, Reaped
from modelyard.server.jobs.logfile import append_line
from modelyard.server.jobs.store import job_log_path
from modelyard.status import Status

__all__ = ["Reaper", "reap_once"]

log = logging.getLogger(__name__)


def reap_once(home: Path, lease_s: float) -> list[Reaped]:
    """One pass: expire lost leases, settle their runs, note it in each job's log."""
    reaped = Leases(home, lease_s).reap()
    for item in reaped:
        what = {Status.QUEUED: "back to the queue", Status.FAILED: "failed", Status.CANCELLED: "cancelled"}[item.status]
        log.warning("job %s: %s; %s", item.job_id, item.reason, what)
        append_line(job_log_path(home, item.job_id), f"reaper: {item.reason}; job {what}")
    return reaped


class Reaper:
    """A daemon thread calling ``reap_once`` every ``interval_s`` seconds."""

    def __init__(self, home: Path, *, lease_s: float, interval_s: float) -> None:
        self.home, self.lease_s, self.interval_s = home, lease_s, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                reap_once(self.home, self.lease_s)
            except Exception:  # noqa: BLE001 - a busy database now is no reason to stop reaping
                log.exception("reaping jobs failed; trying again in %.1f s", self.interval_s)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
