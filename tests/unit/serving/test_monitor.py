"""A served model with --monitor-sample: request log, monitor report, feedback accuracy, gauges, bad input."""

from __future__ import annotations

import time
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


@pytest.mark.anyio
async def test_background_checks_wait_so_they_take_at_most_check_share_of_a_core() -> None:
    served = SimpleNamespace(name="m", version=1, ref="m:1", predictor=None)
    published: list[dict] = []
    monitor = ModelMonitor(
        served, None, ServeConfig(monitor_sample=1.0, monitor_window=10), SimpleNamespace(publish=published.append)
    )
    took = 0.02
    calls: list[int] = []

    def slow_report(window: int) -> dict:
        calls.append(window)
        time.sleep(took)  # what a window's scipy checks cost, here on purpose
        return {"alerts": [], "window": window}

    monitor.report = slow_report  # type: ignore[method-assign]
    rows = np.zeros((1, 4), dtype=np.float32)
    started = time.monotonic()
    for _ in range(5):  # a full new window before every tick: each one is due by count
        for _ in range(10):
            monitor.log.record(torch.zeros(1, 4), rows, 0.0)
        await monitor.tick()
    assert len(calls) == 1 or time.monotonic() - started > took / CHECK_SHARE  # only a slow machine gets two
    assert published == [{"alerts": [], "window": 10}] * len(calls)
    await anyio.sleep(took / CHECK_SHARE + 0.1)  # the budget's wait is over: the next full window is checked
    for _ in range(10):
        monitor.log.record(torch.zeros(1, 4), rows, 0.0)
    assert await monitor.tick() == {"alerts": [], "window": 10} and len(calls) >= 2
