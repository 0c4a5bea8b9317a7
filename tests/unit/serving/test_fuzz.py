"""Fuzzed bodies on the predict and explain routes: every answer is a 2xx or a 4xx with a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.fuzz import assert_no_5xx
from tests.support.serving import client, instances, register

pytestmark = pytest.mark.anyio


async def test_no_odd_body_gets_a_5xx_on_predict_or_explain(home: Path) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    app = create_app([clf], ServeConfig(backend="torch", max_wait_ms=0))
    rows = instances("clf", 2)
    explain = {"instances": rows, "method": "saliency", "target": 0, "top": 3, "steps": 4}
    seen: dict[int, int] = {}
    async with client(app) as http:
        for path, valid in (
            ("/v1/models/clf/predict", {"instances": rows}),
            ("/v1/models/clf/versions/1/predict", {"instances": rows}),
            ("/v1/models/clf/explain", explain),
            ("/v1/models/clf/explain", {**explain, "method": "integrated_gradients"}),
        ):
            await assert_no_5xx(http, path, valid, 120, seen)
        metrics = (await http.get("/metrics")).text
    assert seen.get(200, 0) > 0 and sum(v for k, v in seen.items() if 400 <= k < 500) > 100, seen
    assert not any(f'code="{code}"' in metrics for code in range(500, 600)), metrics
