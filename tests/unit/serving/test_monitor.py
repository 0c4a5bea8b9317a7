"""A served model with --monitor-sample: request log, monitor report, feedback accuracy, gauges, bad input."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import anyio
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from modelyard import workflow
from modelyard.predict import Predictor
from modelyard.serving import create_app
from modelyard.serving.config import ServeConfig
from modelyard.serving.monitor import CHECK_SHARE, ModelMonitor
from tests.support.console import DIGITS


def test_logged_requests_give_a_report_accuracy_from_feedback_and_gauges() -> None:
    workflow.train({**DIGITS, "name": "mon"}, progress=False)
    predictor = Predictor.load("mon:1")
    config = ServeConfig(monitor_sample=1.0, monitor_window=50)
    app = create_app([predictor], config)
    x = np.random.default_rng(0).uniform(0, 16, size=(60, 64)).round()
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        ids = []
        for row in x:
            answer = client.post("/v1/models/mon/predict", json={"instances": [row.tolist()]}).json()
            ids.append(answer["request_id"])
        labels = predictor.predict(x).argmax(axis=1)
        for request_id, label in zip(ids[:10], labels[:10]):
            assert (
                client.post(
                    "/v1/models/mon/feedback", json={"request_id": request_id, "labels": [int(label)]}
                ).status_code
                == 200
            )
        report = client.get("/v1/models/mon/monitor?window=60").json()
        assert report["window"] == 60 and report["schema"]["ok"] is True
        assert report["accuracy"] == {"labelled": 10, "accuracy": 1.0}
        assert report["outputs"]["drift"] is True  # uniform noise is far from the digits
        too_big = client.get("/v1/models/mon/monitor?window=61")
        assert too_big.status_code == 422 and "at most the 60 instances" in too_big.json()["message"]
        unknown = client.get("/v1/models/nope/monitor")
        assert unknown.status_code == 404 and "not served here" in unknown.json()["message"]
        wrong = client.post("/v1/models/mon/feedback", json={"request_id": ids[0], "labels": [1, 2]})
        assert wrong.status_code == 422 and "a list of 1 labels" in wrong.json()["message"]
        metrics = client.get("/metrics").text
        assert 'modelyard_monitor_accuracy{model="mon",version="1"} 1.0' in metrics
        assert 'modelyard_monitor_cpu_seconds{model="mon",version="1"}' in metrics  # read at scrape time


def _monitor(report) -> tuple[ModelMonitor, list[dict]]:
    served = SimpleNamespace(name="m", version=1, ref="m:1", predictor=None)
    published: list[dict] = []
    config = ServeConfig(monitor_sample=1.0, monitor_window=10)
    monitor = ModelMonitor(served, None, config, SimpleNamespace(publish_monitor=published.append))
    monitor.report = report  # type: ignore[method-assign]
    return monitor, published


def _log_a_window(monitor: ModelMonitor) -> None:
    for _ in range(10):
        monitor.log.record(torch.zeros(1, 4), np.zeros((1, 4), dtype=np.float32), 0.0)


@pytest.mark.anyio
async def test_background_checks_wait_so_they_take_at_most_check_share_of_a_core() -> None:
    took = 0.005  # CPU seconds a window's scipy checks cost, here spun on purpose
    calls: list[int] = []
    spent: list[float] = []

    def busy_report(window: int) -> dict:
        calls.append(window)
        started = time.thread_time()
        while time.thread_time() - started < took:
            pass
        spent.append(time.thread_time() - started)
        return {"alerts": [], "window": window}

    monitor, published = _monitor(busy_report)
    started = time.monotonic()
    _log_a_window(monitor)
    await monitor.tick()
    checked = time.monotonic()
    # The wait is 1 / CHECK_SHARE - 1 (199) times the check thread's CPU time: took and the call's
    # own few microseconds, however long a loaded machine kept the thread waiting for a core.
    wait = monitor._next_check - checked
    assert spent[0] <= monitor.cpu_s < spent[0] + 0.05  # the check's CPU and the flush's, counted
    assert took * (1 / CHECK_SHARE - 1) - 0.01 <= wait <= (spent[0] + 0.005) * (1 / CHECK_SHARE - 1)
    for _ in range(4):  # a full new window before every tick: each one is due by count
        _log_a_window(monitor)
        await monitor.tick()
    assert len(calls) == 1 or time.monotonic() - started > took / CHECK_SHARE  # only a slow machine gets two
    assert published == [{"alerts": [], "window": 10}] * len(calls)
    # The budget's wait is over: the next full window is checked.
    await anyio.sleep(max(0.0, monitor._next_check - time.monotonic()) + 0.05)
    _log_a_window(monitor)
    assert await monitor.tick() == {"alerts": [], "window": 10} and len(calls) >= 2


@pytest.mark.anyio
async def test_a_check_that_waits_without_using_the_cpu_does_not_hold_back_the_next() -> None:
    calls: list[int] = []

    def waiting_report(window: int) -> dict:  # a check whose wall time is waiting: for a core, the GIL
        calls.append(window)
        time.sleep(0.2)
        return {"alerts": [], "window": window}

    monitor, published = _monitor(waiting_report)
    _log_a_window(monitor)
    await monitor.tick()
    # Counted by wall time the next check would wait 49 x 0.2 s; by CPU time, 49 x well under 10 ms.
    assert monitor._next_check - time.monotonic() < 0.5
    await anyio.sleep(0.5)
    _log_a_window(monitor)
    assert await monitor.tick() == {"alerts": [], "window": 10} and calls == [10, 10] and len(published) == 2


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Hook.received.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_due_window_sets_the_gauges_and_posts_the_failed_checks_with_the_webhook_token() -> None:
    workflow.train({**DIGITS, "name": "hook"}, progress=False)
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    config = ServeConfig(
        monitor_sample=1.0,
        monitor_window=50,
        monitor_webhook=f"http://127.0.0.1:{hook.server_address[1]}/alerts",
        monitor_webhook_token="s3cret",
    )
    assert "monitor_webhook_token" not in config.public()
    app = create_app([Predictor.load("hook:1")], config)
    noise = np.random.default_rng(1).uniform(0, 16, size=(50, 64)).round()
    try:
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            assert client.post("/v1/models/hook/predict", json={"instances": noise.tolist()}).status_code == 200
            monitor = app.state.models.get("hook", None).monitor
            # The background task's step, run here at once (unless the task itself got there first).
            report = client.portal.call(monitor.tick) or monitor.last
            assert report is not None and report["outputs"]["drift"] is True
            deadline = time.monotonic() + 10
            while not _Hook.received and time.monotonic() < deadline:
                time.sleep(0.05)
            metrics = client.get("/metrics").text
            assert f'modelyard_monitor_alerts{{model="hook",version="1"}} {float(len(report["alerts"]))}' in metrics
    finally:
        hook.shutdown()
        hook.server_close()
    ((headers, body),) = _Hook.received
    assert headers["authorization"] == "Bearer s3cret"
    assert body["ref"] == "hook:1" and body["window"] == 50 and body["alerts"] == report["alerts"]
    assert [c["message"] for c in body["checks"]] == report["alerts"]
    shift = next(c for c in body["checks"] if c["check"] == "output_shift")
    assert shift["p_value"] == report["outputs"]["p_value"] < 0.05
