"""`modelyard monitor NAME[:N]` against a real `modelyard serve --monitor-sample 1` process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelyard import workflow
from modelyard.cli._fmt import fmt
from modelyard.predict import Predictor
from tests.support.cli import run_cli
from tests.support.console import DIGITS
from tests.support.server_process import Server, free_port, start_serve


@pytest.fixture
def served(home: Path) -> Iterator[tuple[Server, np.ndarray]]:
    """digits `mon:1` served with every request logged; 60 uniform-noise instances sent, 10 labelled."""
    workflow.train({**DIGITS, "name": "mon"}, progress=False)
    server = start_serve(home, "mon:1", "--monitor-sample", "1", "--monitor-window", "50")
    try:
        x = np.random.default_rng(0).uniform(0, 16, size=(60, 64)).round()
        answer = server.post("/v1/models/mon/predict", json={"instances": x.tolist()}).json()
        labels = Predictor.load("mon:1").predict(x).argmax(axis=1)
        labels[10:] = (labels[10:] + 1) % 10  # 10 right, 50 wrong: live accuracy 1/6
        feedback = server.post(
            "/v1/models/mon/feedback", json={"request_id": answer["request_id"], "labels": labels.tolist()}
        )
        assert feedback.status_code == 200, feedback.text
        yield server, x
    finally:
        server.stop()


def test_json_is_the_servers_report(served: tuple[Server, np.ndarray]) -> None:
    server, _ = served
    for target, path in (("mon", "/v1/models/mon/monitor"), ("mon:1", "/v1/models/mon/versions/1/monitor")):
        reference = server.get(path, params={"window": 60}).json()
        result = run_cli("monitor", target, "--url", server.url, "--window", "60", "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out) == reference
    assert reference["accuracy"] == {"labelled": 60, "accuracy": pytest.approx(10 / 60)}
    assert reference["outputs"]["drift"] is True and reference["alerts"]


def test_table_shows_each_check_by_the_rounding_rule(served: tuple[Server, np.ndarray]) -> None:
    server, _ = served
    report = server.get("/v1/models/mon/monitor").json()  # the server's default window (50)
    result = run_cli("monitor", "mon:1", "--url", server.url)
    assert result.code == 0, result.err
    out = result.out
    assert "mon:1" in out and "window=50" in out and "logged=60" in out
    assert f"p = {fmt(report['outputs']['p_value'])}" in out
    assert fmt(report["quality"]["out_of_range_rate"]) in out
    assert f"max PSI {fmt(report['features']['max_psi'])}" in out
    assert f"{fmt(report['accuracy']['accuracy'])} ({report['accuracy']['labelled']} labelled)" in out
    for line in report["alerts"]:
        assert f"alert: {line}" in out
    drifted = len(report["features"]["drifted_features"])
    assert f"{drifted} of 64 drifted" in out


def test_errors_are_one_line(served: tuple[Server, np.ndarray]) -> None:
    server, _ = served
    too_big = run_cli("monitor", "mon", "--url", server.url, "--window", "61")
    message = server.get("/v1/models/mon/monitor", params={"window": 61}).json()["message"]
    assert too_big.code != 0 and too_big.err == f"error: {message}\n" and "at most the 60 instances" in message
    unknown = run_cli("monitor", "nope", "--url", server.url)
    assert unknown.code != 0 and unknown.err.startswith("error: ") and "not served here" in unknown.err
    assert unknown.err.count("\n") == 1
    alias = run_cli("monitor", "mon@production", "--url", server.url)
    assert alias.code == 2 and "expected NAME or NAME:N" in alias.err and alias.err.count("\n") == 1
    nobody = f"http://127.0.0.1:{free_port()}"
    down = run_cli("monitor", "mon", "--url", nobody)
    assert (
        down.code != 0
        and down.err == down.err.splitlines()[0] + "\n"
        and f"No modelyard server at {nobody}" in down.err
    )
