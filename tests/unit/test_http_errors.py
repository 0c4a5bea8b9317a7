"""Both ASGI apps answer errors through one set of handlers: one JSON shape and name per error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.errors import ModelyardError
from modelyard.predict import Predictor
from modelyard.server import ServerConfig, create_server_app
from modelyard.serving import create_app
from modelyard.serving.config import ServeConfig
from tests.support.serving import client, instances, register

pytestmark = pytest.mark.anyio

KEY = "k" * 32


@pytest.fixture
def apps(home: Path) -> tuple[Any, Any]:
    served = create_app([Predictor.load(register("clf", home), home=home)], ServeConfig(backend="torch"))
    control = create_server_app(ServerConfig(port=8080, home=home), start_workers=False)
    return served, control


def test_both_apps_install_the_same_handlers(apps: tuple[Any, Any]) -> None:
    served, control = apps
    for kind in (ModelyardError, Exception):
        assert served.exception_handlers[kind].__code__ is control.exception_handlers[kind].__code__


async def test_request_validation_is_the_same_error_in_both_apps(apps: tuple[Any, Any]) -> None:
    served, control = apps
    async with client(served) as http:
        a = await http.post("/v1/models/clf/versions/one/explain", json={"instances": instances("clf", 1)})
        a_route = await http.get("/no/such/route")
    async with client(control) as http:
        b = await http.get("http://127.0.0.1:8080/v1/jobs", params={"limit": 0})
        b_route = await http.get("http://127.0.0.1:8080/no/such/route")
    assert a.status_code == b.status_code == 422
    assert a.json()["error"] == b.json()["error"] == "InvalidRequestError"
    assert a.json()["field"] == "path.version" and b.json()["field"] == "query.limit"
    assert a.json()["message"].startswith("Invalid value for `path.version`: ")
    assert b.json()["message"].startswith("Invalid value for `query.limit`: ") and "received '0'" in b.json()["message"]
    assert a_route.status_code == b_route.status_code == 404
    assert a_route.json()["error"] == b_route.json()["error"] == "HTTPError"
    assert set(a_route.json()) == set(b_route.json()) == {"error", "message"}


async def test_a_refused_token_is_the_same_error_in_both_apps(home: Path) -> None:
    served = create_app([Predictor.load(register("clf", home), home=home)], ServeConfig(backend="torch", api_key=KEY))
    control = create_server_app(ServerConfig(host="0.0.0.0", port=8080, home=home), start_workers=False)
    async with client(served) as http:
        a = await http.post("/v1/models/clf/predict", json={"instances": instances("clf", 1)})
    async with control.router.lifespan_context(control):
        transport = httpx.ASGITransport(app=control)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            b = await http.post("/v1/session", json={"token": "not-a-token"})
            c = await http.get("/v1/jobs")
    for answer in (a, b, c):
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", answer.text
        assert answer.json()["error"] == "UnauthorizedError" and set(answer.json()) == {"error", "message"}
