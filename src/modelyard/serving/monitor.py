"""Monitoring of one served version: its request log, windows checked against its training reference.

A background task flushes the request log and, each time ``monitor_window`` new instances have
been logged, checks the last window (``monitoring.drift.window_report``, in a thread), sets the
Prometheus gauges and raises alerts: a log line, and a JSON POST to ``monitor_webhook`` if set.
``GET /v1/models/{name}/monitor`` computes the same report on demand (docs/monitoring.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from typing import Any

import numpy as np

from modelyard.errors import InvalidInstancesError
from modelyard.monitoring.alerts import OUT_OF_RANGE_ALERT, alerts_of, failed_checks
from modelyard.serving.request_log import RequestLog, Window

__all__ = ["CHECK_SHARE", "ModelMonitor", "alerts_of"]

log = logging.getLogger(__name__)

# Most of one core's time the background checks take (the rest waits for the next). Whatever a
# check costs, the request path then loses at most this share of one core to them, plus the GIL
# hand-offs while one runs: at 0.02 a served MLP's CPU per request rose ~8% at 16 clients
# (serve_bench, flush alone ~0%), so 0.005: at 1,300 req/s a 75 ms check of 500 instances runs
# every ~15 s instead of every window.
CHECK_SHARE = 0.005
_FLUSH_S = 0.5


class ModelMonitor:
    """The request log and checks of one served version (``reference`` from its version folder)."""

    def __init__(self, served: Any, reference: Any, config: Any, gauges: Any) -> None:
        self.served = served
        self.reference = reference
        self.config = config
        self.gauges = gauges
        self.log = RequestLog(config.monitor_capacity, config.monitor_sample)
        self.last: dict[str, Any] | None = None  # the latest background window report
        self._checked = 0
        self._next_check = 0.0  # time.monotonic() before which no background check starts
        self._task: asyncio.Task[None] | None = None
        # CPU seconds the background flushes and checks took in their threads: what monitoring costs
        # the server beyond the request path's coin and append (``modelyard_monitor_cpu_seconds``).
        self.cpu_s = 0.0

    def report(self, window: int | None = None) -> dict[str, Any]:
        """Quality, drift, output shift and live accuracy of the last ``window`` logged instances."""
        from modelyard.monitoring.drift import window_report

        size = self.config.monitor_window if window is None else window
        if size < 2:
            raise InvalidInstancesError(
                f"Invalid value for `window`: expected at least 2 instances, received {size}", field="window"
            )
        rows = self.log.window(size)
        report = window_report(self.reference, rows.features, rows.outputs)
        if "quality" in report:  # the threshold alerts_of applies, for clients that show it
            report["quality"]["out_of_range_alert"] = OUT_OF_RANGE_ALERT
        latency = rows.latency_s
        report = {
            "model": self.served.name,
            "version": self.served.version,
            "ref": self.served.ref,
            "window": size,
            "logged": self.log.logged,
            "sample": self.config.monitor_sample,
            "latency_s": {"p50": float(np.quantile(latency, 0.5)), "p95": float(np.quantile(latency, 0.95))},
            **report,
            "accuracy": self._accuracy(rows),
        }
        report["alerts"] = alerts_of(report)
        return report

    def _accuracy(self, rows: Window) -> dict[str, Any]:
        names = getattr(self.served.predictor, "class_names", None) or []
        right = labelled = 0
        for label, outputs in zip(self.log.labels(rows), rows.outputs, strict=True):
            if label is None:
                continue
            index = names.index(label) if isinstance(label, str) and label in names else label
            predicted = int(outputs[0] >= 0.5) if outputs.size == 1 else int(outputs.argmax())
            labelled += 1
            right += int(index == predicted)
        return {"labelled": labelled, "accuracy": right / labelled if labelled else None}

    # -- the background task -----------------------------------------------------------------
    async def start(self) -> None:
        # scipy.stats takes ~1 s of CPU to import: at start-up (the server is not ready yet), not in
        # the first check, where it would hold the GIL against the requests being served.
        await asyncio.to_thread(importlib.import_module, "scipy.stats")
        self._task = asyncio.create_task(self._run(), name=f"monitor {self.served.ref}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            await self.tick()

    async def tick(self) -> dict[str, Any] | None:
        """Flush the log; check the last window when one is due (the report, else None)."""
        window = self.config.monitor_window
        await asyncio.to_thread(self._timed_flush)  # off the event loop, which serves the requests
        if self.log.logged - self._checked < window or self.log.kept() < window:
            return None
        if time.monotonic() < self._next_check:
            return None
        self._checked = self.log.logged
        cpu = [0.0]  # the check thread's CPU seconds, set by _timed_report
        try:
            report = await asyncio.to_thread(self._timed_report, window, cpu)
        except Exception:  # a check must never take the server down; say so and go on
            log.exception("monitor: checking %s failed", self.served.ref)
            return None
        finally:
            self.cpu_s += cpu[0]
            # The checks (scipy, mostly holding the GIL) share the CPU with the request path: a
            # window of 500 takes 0.1-0.25 s, and at 2,500 req/s one falls due every 0.2 s. Waiting
            # CHECK_SHARE's complement of the check's CPU time after each bounds them to that share
            # of one core. CPU, not wall time: on a loaded machine the wall time also counts the
            # waits for a core and for the GIL, and the checks would back off for what they did not use.
            self._next_check = time.monotonic() + cpu[0] * (1 / CHECK_SHARE - 1)
        self.last = report
        self.gauges.publish_monitor(report)
        if report["alerts"]:
            await self._alert(report)
        return report

    def _timed_flush(self) -> None:
        started = time.thread_time()
        try:
            self.log.flush()
        finally:
            self.cpu_s += time.thread_time() - started

    def _timed_report(self, window: int, cpu: list[float]) -> dict[str, Any]:
        """``report(window)``, the CPU time its thread spent in it stored in ``cpu[0]``."""
        started = time.thread_time()
        try:
            return self.report(window)
        finally:
            cpu[0] = time.thread_time() - started

    async def _alert(self, report: dict[str, Any]) -> None:
        for line in report["alerts"]:
            log.warning("monitor alert %s (window of %d): %s", report["ref"], report["window"], line)
        url = self.config.monitor_webhook
        if url is None:
            return
        import httpx

        # "checks": each failed check by name with its p-value (what a control plane's retraining reads).
        body = {k: report[k] for k in ("model", "version", "ref", "window", "alerts")} | {
            "checks": failed_checks(report)
        }
        token = self.config.monitor_webhook_token
        headers = {"authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                await client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("monitor: webhook %s failed: %s", url, exc)
