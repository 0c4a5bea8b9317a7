"""Prometheus metrics of one app, in the app's own CollectorRegistry (no global state, so
several apps, e.g. in tests, never share counters).

Exposed at ``GET /metrics``:

- ``modelyard_requests_total{route, model, code}``: every HTTP request, rejected ones too
- ``modelyard_request_latency_seconds{route, model}``: time to the full response
- ``modelyard_batch_size{model}``: rows per forward pass (shows batching at work)
- ``modelyard_batch_latency_seconds{model}``: time of one forward pass
- ``modelyard_queue_depth{model}``: requests waiting for a batch, read at scrape time
- ``modelyard_nonfinite_outputs_total{model}``: instances whose outputs were NaN/Infinity
- ``modelyard_monitor_*{model, version}``: the last monitoring window (with ``--monitor-sample``):
  output-shift p-value, drifted features, largest PSI, missing and out-of-range rates, live
  accuracy and the number of alerts (docs/monitoring.md); ``modelyard_monitor_cpu_seconds`` the
  CPU time its background flushes and checks have taken, read at scrape time
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match

__all__ = ["ServeMetrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_MONITOR_GAUGES = {
    "output_shift_p": "Output shift p-value of the last window (per-class KS, Bonferroni, with the entropy t-test)",
    "drifted_features": "Features whose Holm-corrected KS p-value is below alpha in the last window",
    "max_psi": "Largest population stability index of a feature in the last window",
    "missing_rate": "Share of NaN feature values in the last window",
    "out_of_range_rate": "Share of feature values outside the training min/max in the last window",
    "accuracy": "Accuracy on the instances of the last window with labels from the feedback route",
    "alerts": "Checks of the last window that raised an alert",
}


class ServeMetrics:
    """The metric families of one app."""

    def __init__(self, max_batch_size: int = 64) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "modelyard_requests",
            "HTTP requests by route, model and status code",
            ["route", "model", "code"],
            registry=reg,
        )
        self.latency = Histogram(
            "modelyard_request_latency_seconds",
            "Request latency until the full response",
            ["route", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        sizes = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, max_batch_size})
        self.batch_size = Histogram(
            "modelyard_batch_size",
            "Rows per forward pass",
            ["model"],
            buckets=[s for s in sizes if s <= max_batch_size],
            registry=reg,
        )
        self.batch_latency = Histogram(
            "modelyard_batch_latency_seconds",
            "Time of one forward pass",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue_depth = Gauge("modelyard_queue_depth", "Requests waiting for a batch", ["model"], registry=reg)
        self.nonfinite = Counter(
            "modelyard_nonfinite_outputs", "Instances whose model outputs were NaN or Infinity", ["model"], registry=reg
        )

        self.monitor = {
            key: Gauge(f"modelyard_monitor_{key}", text, ["model", "version"], registry=reg)
            for key, text in _MONITOR_GAUGES.items()
        }
        self.monitor_cpu = Gauge(
            "modelyard_monitor_cpu_seconds",
            "CPU seconds the monitor's background flushes and checks have taken since the server started",
            ["model", "version"],
            registry=reg,
        )

    def publish_monitor(self, report: dict[str, Any]) -> None:
        """Set the monitoring gauges from a window report (``serving.monitor``)."""
        labels = {"model": report["model"], "version": str(report["version"])}
        values = {"alerts": len(report["alerts"])}
        if report["schema"]["ok"]:
            values |= {
                "output_shift_p": report["outputs"]["p_value"],
                "drifted_features": len(report["features"]["drifted_features"]),
                "max_psi": report["features"]["max_psi"],
                "missing_rate": report["quality"]["missing_rate"],
                "out_of_range_rate": report["quality"]["out_of_range_rate"],
            }
        if report["accuracy"]["accuracy"] is not None:
            values["accuracy"] = report["accuracy"]["accuracy"]
        for key, value in values.items():
            self.monitor[key].labels(**labels).set(float(value))

    def watch_monitor(self, model: str, version: Any, cpu_s: Callable[[], float]) -> None:
        self.monitor_cpu.labels(model=model, version=str(version)).set_function(cpu_s)

    def batch_observer(self, model: str) -> Callable[[int, float], None]:
        size, latency = self.batch_size.labels(model=model), self.batch_latency.labels(model=model)

        def observe(rows: int, seconds: float) -> None:
            size.observe(rows)
            latency.observe(seconds)

        return observe

    def watch_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model=model).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


CLIENT_CLOSED = 499  # nginx's code for "the client closed the connection before the answer"


class MetricsMiddleware:
    """Counts and times every HTTP request, including those answered by other middleware."""

    def __init__(
        self, app: Any, metrics: ServeMetrics, routes: Callable[[], list[Any]], models: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self._routes = routes
        self._served = models

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None
        gone = False  # the client disconnected

        async def recording_receive() -> dict[str, Any]:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        except (asyncio.CancelledError, OSError):  # uvicorn cancels the task, or a send fails, once the client is gone
            gone = True
            raise
        finally:
            if status is None:
                # No answer was started: the client went away first (nginx's 499), else a fault (500).
                status = CLIENT_CLOSED if gone else 500
            route, model = self._labels(scope)
            self.metrics.requests.labels(route=route, model=model, code=str(status)).inc()
            self.metrics.latency.labels(route=route, model=model).observe(time.perf_counter() - start)

    def _labels(self, scope: dict[str, Any]) -> tuple[str, str]:
        """Route template and model name; both from bounded sets (no raw paths as labels)."""
        route = scope.get("route")
        params = scope.get("path_params") or {}
        if route is None:  # answered before routing (413, 401): find the template ourselves
            for candidate in self._routes():
                match, child = candidate.matches(scope)
                if match == Match.FULL:
                    route, params = candidate, child.get("path_params", {})
                    break
        name = str(params.get("name", ""))
        return (getattr(route, "path", "unmatched"), name if name and self._served(name) else "")
