"""Fuzzed bodies on every write route of the control plane that takes one: a 2xx or a 4xx with a message, never a 5xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modelyard.server import ServerConfig, create_server_app
from tests.support.fuzz import assert_no_5xx
from tests.support.jobs import TINY
from tests.support.serving import register

pytestmark = pytest.mark.anyio


async def test_no_odd_body_gets_a_5xx_on_the_control_plane(home: Path) -> None:
    register("clf", home)  # for the alias route
    app = create_server_app(ServerConfig(port=8080, home=home), start_workers=False)
    seen: dict[int, int] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            for path, valid in (
                ("/v1/jobs", {"spec": TINY, "overrides": ["train.epochs=1"], "max_attempts": 2}),
                ("/v1/jobs", TINY),
                ("/v1/deployments", {"name": "d", "model": "tiny:1", "replicas": 1}),
                ("/v1/deployments/d/predict", {"instances": [[1.0, 2.0, 3.0, 4.0]]}),
                ("/v1/session", {"token": "x" * 40}),
                (
                    "/v1/tunes",
                    {"spec": TINY, "search": ["train.lr=loguniform(1e-3,1e-2)"], "trials": 1, "metric": "loss"},
                ),
            ):
                await assert_no_5xx(http, path, valid, 60, seen)
            await assert_no_5xx(http, "/v1/models/clf/aliases/production", {"version": 1}, 60, seen, method="PUT")
            valid = await http.put("/v1/models/clf/aliases/production", json={"version": 1})
            assert valid.status_code == 200 and valid.json()["model"] == "clf:1", valid.text
    assert seen.get(201, 0) > 0 and sum(v for k, v in seen.items() if 400 <= k < 500) > 200, seen
