"""DNS-rebinding guard on `modelyard serve`: the same Host rule as the control plane."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modelyard.hostguard import HostGuard
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.serving import instances, register


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("127.0.0.1:8000", [], True),
        ("localhost:8000", [], True),
        ("[::1]:8000", [], True),
        ("127.0.0.1", [], True),
        ("rebound.attacker.example:8000", [], False),  # a name re-pointed at 127.0.0.1
        ("127.0.0.1:9999", [], False),
        ("127.0.0.1:80x", [], False),
        ("models.example.com:8000", ["models.example.com"], True),
        ("other.example.com:8000", ["models.example.com"], False),
    ],
)
async def test_predict_and_explain_answer_only_to_the_servers_names(
    home: Path, host: str, allowed: list[str], ok: bool
) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    app = create_app([clf], ServeConfig(backend="torch", max_wait_ms=0, allowed_hosts=allowed))
    body = {"instances": instances("clf", 1)}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            for method, path, payload in (
                ("POST", "/v1/models/clf/predict", body),
                ("POST", "/v1/models/clf/explain", body),
                ("GET", "/v1/models", None),
            ):
                r = await http.request(method, path, json=payload, headers={"host": host})
                if ok:
                    assert r.status_code == 200, r.text
                else:
                    assert r.status_code == 400, r.text
                    assert r.json()["error"] == "InvalidHostError"
                    assert "--allowed-host" in r.json()["message"]


def test_the_guard_is_the_control_planes_rule() -> None:
    from modelyard.server.config import ServerConfig

    server = ServerConfig(host="127.0.0.1", port=8080).host_guard()
    serve = ServeConfig(host="127.0.0.1", port=8080).host_guard()
    for value in ("127.0.0.1:8080", "localhost", "evil.example:8080", "127.0.0.1:8081", "", None):
        assert server.host_ok(value) == serve.host_ok(value)
    assert not HostGuard("127.0.0.1", 8000).host_ok(None)
    # An ephemeral port (0) is only known after binding: the names are still checked.
    assert HostGuard("127.0.0.1", 0).host_ok("127.0.0.1:41234")
    assert not HostGuard("127.0.0.1", 0).host_ok("evil.example:41234")
