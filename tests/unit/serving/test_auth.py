"""Secure by default: API key sources, refusal to bind publicly without one, 401s."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.errors import SpecError
from modelyard.hostguard import is_loopback
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from modelyard.serving.auth import resolve_api_key
from tests.support.serving import API_KEY, client, instances, register


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_public_host_without_a_key_is_refused_with_a_one_line_hint() -> None:
    with pytest.raises(SpecError) as info:
        ServeConfig.make(host="0.0.0.0")
    message = info.value.message
    assert "refusing to listen on 0.0.0.0 without an API key" in message and "MODELYARD_API_KEY" in message
    assert "\n" not in message
    assert ServeConfig.make(host="0.0.0.0", api_key=API_KEY).key() == API_KEY
    assert "api_key" not in ServeConfig.make(api_key=API_KEY).public()


def test_key_comes_from_the_file_first_then_the_environment(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(API_KEY + "\nignored second line\n")
    assert resolve_api_key(keyfile, environ={"MODELYARD_API_KEY": "x" * 20}) == API_KEY
    assert resolve_api_key(None, environ={"MODELYARD_API_KEY": " " + "y" * 20 + "\n"}) == "y" * 20
    assert resolve_api_key(None, environ={}) is None
    with pytest.raises(SpecError, match="at least 16 characters, received 5"):
        resolve_api_key(None, environ={"MODELYARD_API_KEY": "short"})
    with pytest.raises(SpecError, match="Cannot read the API key file"):
        resolve_api_key(tmp_path / "missing")


@pytest.mark.anyio
async def test_every_route_but_the_probes_needs_the_bearer_token(home: Path) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    app = create_app([clf], ServeConfig(backend="torch", max_wait_ms=0, api_key=API_KEY, max_body_bytes=2048))
    body = {"instances": instances("clf", 1)}
    async with client(app) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        for method, path in [("GET", "/v1/models"), ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json")]:
            r = await anonymous.request(method, path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
        r = await anonymous.post("/v1/models/clf/predict", json=body)
        assert r.status_code == 401 and "Missing API key" in r.json()["message"]
        # Unauthenticated callers learn nothing about limits either: 401 before 413.
        big = await anonymous.post(
            "/v1/models/clf/predict", content=b"x" * 4096, headers={"content-type": "application/json"}
        )
        assert big.status_code == 401
        wrong = await anonymous.post(
            "/v1/models/clf/predict", json=body, headers={"authorization": "Bearer " + "z" * 24}
        )
        assert wrong.status_code == 401 and "Invalid API key" in wrong.json()["message"]
        basic = await anonymous.post("/v1/models/clf/predict", json=body, headers={"authorization": f"Basic {API_KEY}"})
        assert basic.status_code == 401
    async with client(app, headers={"authorization": f"Bearer {API_KEY}"}) as authorized:
        assert (await authorized.post("/v1/models/clf/predict", json=body)).status_code == 200
        assert (await authorized.get("/metrics")).status_code == 200
