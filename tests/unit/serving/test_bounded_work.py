"""Bounded work per explain request: a cost budget, the request timeout stops the work, strict
option types, Retry-After from the queue, and numbers Python cannot print are a 422, not a 500."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import RequestTimeoutError
from modelyard.explaining import Explainer
from modelyard.explaining.problem import Problem
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from modelyard.serving.explain_slots import _Slot
from tests.support.explaining import register
from tests.support.serving import client

pytestmark = pytest.mark.anyio
ROWS = [[1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.1, 2.0]]


def _app(home: Path, **config: object):
    return create_app([Predictor.load(register("lin", home), home=home)], ServeConfig(backend="torch", **config))


async def test_instances_times_steps_over_the_budget_is_refused_before_any_work(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    build = Problem.build.__func__

    def counted(cls, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(1)
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(Problem, "build", classmethod(counted))
    async with client(_app(home, max_explain_cost=100)) as http:
        r = await http.post("/v1/models/lin/explain", json={"instances": ROWS, "steps": 51})
        saliency = await http.post("/v1/models/lin/explain", json={"instances": ROWS, "method": "saliency"})
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert "`steps`" in message and "at most 100" in message and "2 x 51 = 102" in message and "\n" not in message
    assert calls == [1]  # only the saliency request (no steps) reached the explainer
    assert saliency.status_code == 200, saliency.text


async def test_the_request_timeout_stops_the_explanation_itself(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[float] = []
    forward = Problem.forward

    def slow_forward(self: Problem, z):  # noqa: ANN001, ANN202
        out = forward(self, z)  # checks the deadline first
        passes.append(time.monotonic())
        time.sleep(0.05)
        return out

    # 2 instances x 500 steps in chunks of 4 rows: 250 passes, 12.5 s of work without the timeout.
    async with client(_app(home, timeout_s=5, max_explain_cost=10_000)) as http:
        warm = await http.post("/v1/models/lin/explain", json={"instances": ROWS, "steps": 2})  # imports Captum
        assert warm.status_code == 200, warm.text
    monkeypatch.setattr(Problem, "forward", slow_forward)
    monkeypatch.setattr("modelyard.explaining.attributions._ROWS_PER_PASS", 4)
    async with client(_app(home, timeout_s=0.3, max_explain_cost=10_000)) as http:
        start = time.monotonic()
        r = await http.post("/v1/models/lin/explain", json={"instances": ROWS, "steps": 500})
        elapsed = time.monotonic() - start
    assert r.status_code == 504, r.text
    assert "request timeout" in r.json()["message"]
    assert elapsed < 6.0  # the whole work takes 12.5 s; a loaded 2-core machine adds seconds of scheduling
    await asyncio.sleep(0.2)
    count = len(passes)
    await asyncio.sleep(0.3)
    assert len(passes) == count < 20  # stopped: no pass ran after the answer


def test_the_python_api_takes_a_timeout(home: Path) -> None:
    explainer = Explainer.load(register("lin", home), home=home)
    assert len(explainer.explain(np.asarray(ROWS, dtype=np.float32), timeout_s=60).attributions) == 2
    with pytest.raises(RequestTimeoutError, match="request timeout"):
        explainer.explain(np.asarray(ROWS, dtype=np.float32), steps=50, timeout_s=0)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"steps": "10"}, "steps"), ({"steps": True}, "steps"), ({"top": "3"}, "top"), ({"top": False}, "top")],
)
async def test_options_are_strictly_typed(home: Path, options: dict, field: str) -> None:
    async with client(_app(home)) as http:
        r = await http.post("/v1/models/lin/explain", json={"instances": ROWS, **options})
        ok = await http.post("/v1/models/lin/explain", json={"instances": ROWS, "steps": 10, "top": 3})
    assert r.status_code == 422, r.text
    assert f"`{field}`" in r.json()["message"]
    assert ok.status_code == 200


async def test_huge_integers_and_booleans_are_422_on_predict_and_explain(home: Path) -> None:
    huge = b'{"instances": [[1, 2, ' + b"9" * 5000 + b", 4]]}"
    mixed = b'{"instances": [[1, 2.5, true, 4]]}'
    target = b'{"instances": [[1, 2, 3, 4]], "target": ' + b"7" * 5000 + b"}"
    headers = {"content-type": "application/json"}
    async with client(_app(home)) as http:
        for path in ("/v1/models/lin/predict", "/v1/models/lin/explain"):
            for body, fragment in ((huge, "4,300 digits"), (mixed, "true/false")):
                r = await http.post(path, content=body, headers=headers)
                assert r.status_code == 422, (path, r.text)
                assert fragment in r.json()["message"]
        r = await http.post("/v1/models/lin/explain", content=target, headers=headers)
        assert r.status_code == 422 and "4,300 digits" in r.json()["message"]


def test_retry_after_follows_the_queue_and_the_timed_explanations() -> None:
    slot = _Slot(predictor=None)
    assert slot.retry_after() == 1  # nothing timed yet: 1 s estimate, one ahead
    slot.waiting, slot.seconds = 7, 3.0
    assert slot.retry_after() == 24  # eight explanations of ~3 s each before a new one runs
