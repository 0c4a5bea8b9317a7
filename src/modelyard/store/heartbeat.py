"""A thread that keeps a running run's heartbeat fresh between epochs.

Epochs beat too (``RunStore.log_epoch``), but one epoch may outlast ``STALE_AFTER_S``, and a run
silent that long is taken for dead by ``RunStore.settle_stale``. When the run stops being
``running`` under it (``modelyard runs cancel`` from another machine) the thread interrupts the
training in the main thread, so a cancel is obeyed even where no signal can reach the process.
"""

from __future__ import annotations

import _thread
import logging
import threading
from types import TracebackType

from modelyard.errors import StoreError
from modelyard.store import runs as _runs

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """``with Heartbeat(runs, run_id): ...`` beats every ``interval_s`` while the block runs."""

    def __init__(self, runs: _runs.RunStore, run_id: str, interval_s: float | None = None) -> None:
        self.runs, self.run_id = runs, run_id
        self.interval_s = _runs.HEARTBEAT_S if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.runs.heartbeat(self.run_id)
            except StoreError as exc:  # no longer running: cancelled (or reaped) under us
                if not self._stop.is_set():
                    log.warning("run %s: %s; stopping its training", self.run_id, exc.message)
                    _thread.interrupt_main()
                return
            except Exception:  # noqa: BLE001 - a busy database now is no reason to stop beating
                log.exception("run %s: heartbeat failed; trying again in %.0f s", self.run_id, self.interval_s)
