"""``GET /v1/deployments/NAME/monitor`` and ``POST .../feedback`` of the control plane: refusals and auth.

No replica runs here (the rows are written to the store directly); the proxied answers of real
`modelyard serve` replicas are checked in tests/integration/test_server_deploy.py and, as the
console renders them, in tests/e2e/test_console_monitor.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from modelyard.errors import SpecError
from modelyard.server import ServerConfig, create_server_app
from modelyard.server.auth.tokens import TokenStore
from modelyard.server.deployments.replicas import ReplicaConfig
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.deployments.store import DeploymentStore
from tests.support.console import client as mini_client
from tests.support.console import mini_app

pytestmark = pytest.mark.anyio
PUBLIC = "192.0.2.2"  # TEST-NET-1, as in tests/unit/server/auth


@asynccontextmanager
async def server(home: Path, host: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(host=host, port=8080, home=home), start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8080") as http:
            yield http


def deployment(home: Path, name: str, **options: object) -> None:
    """A deployment row (its model does not exist, so no replica is launched)."""
    DeploymentStore(home).create(DeploymentRequest.parse({"name": name, "model": "m:1", **options}), "m:1")


def one_line(answer: httpx.Response, status: int, *words: str) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert "\n" not in body["message"] and all(w in body["message"] for w in words), body
    return body


async def test_unknown_unmonitored_and_bad_queries_are_one_line_4xx(home: Path) -> None:
    deployment(home, "plain")
    deployment(home, "watched", monitor_sample=0.5, replicas=2)
    async with mini_client(mini_app(home)) as http:
        one_line(await http.get("/v1/deployments/ghost/monitor"), 404, "Unknown deployment 'ghost'", "plain")
        one_line(await http.post("/v1/deployments/ghost/feedback", json={}), 404, "Unknown deployment 'ghost'")
        for answer in (
            await http.get("/v1/deployments/plain/monitor"),
            await http.post("/v1/deployments/plain/feedback", json={"request_id": "r", "labels": [1]}),
        ):
            body = one_line(answer, 409, "'plain' is not monitored", "--monitor-sample 0.1")
            assert body["field"] == "monitor_sample"
        body = one_line(await http.get("/v1/deployments/watched/monitor?replica=one"), 422, "`replica`", "'one'")
        assert body["field"] == "replica"
        body = one_line(await http.get("/v1/deployments/watched/monitor?replica=2"), 422, "from 0 to 1", "received 2")
        assert body["field"] == "replica"
        # Monitored, but this server runs no replica of it: a 503 that says so.
        one_line(await http.get("/v1/deployments/watched/monitor?window=50"), 503, "no replica is running")


async def test_the_report_needs_a_read_token_and_feedback_an_admin_one_off_loopback(home: Path) -> None:
    deployment(home, "watched", monitor_sample=1.0)
    tokens = TokenStore(home)
    _, read = tokens.create("read", "viewer")
    _, admin = tokens.create("admin", "ops")
    as_read, as_admin = ({"Authorization": f"Bearer {t}"} for t in (read, admin))
    labels = {"request_id": "r", "labels": [1]}
    async with server(home, host=PUBLIC) as http:
        assert (await http.get("/v1/deployments/watched/monitor")).status_code == 401
        assert (await http.post("/v1/deployments/watched/feedback", json=labels)).status_code == 401
        # Past auth: the supervisor's answer (the model m:1 does not exist, so no replica runs).
        one_line(await http.get("/v1/deployments/watched/monitor", headers=as_read), 503, "no replica is running")
        denied = await http.post("/v1/deployments/watched/feedback", json=labels, headers=as_read)
        one_line(denied, 403, "needs an admin token")
        one_line(await http.post("/v1/deployments/watched/feedback", json=labels, headers=as_admin), 503, "no replica")


def test_monitoring_options_reach_the_replicas_command(home: Path) -> None:
    request = DeploymentRequest.parse({"name": "w", "model": "m:1", "monitor_sample": 0.25, "monitor_window": 40})
    options = request.options()
    assert options["monitor_sample"] == 0.25 and options["monitor_window"] == 40
    assert options["monitor_capacity"] == 10_000  # `modelyard serve`'s own default
    command = ReplicaConfig(ref="m:1", home=home, api_key="k", **options).command(8000)
    for flag, value in (("--monitor-sample", "0.25"), ("--monitor-window", "40"), ("--monitor-capacity", "10000")):
        assert command[command.index(flag) + 1] == value
    with pytest.raises(SpecError, match="monitor_sample"):
        DeploymentRequest.parse({"name": "w", "model": "m:1", "monitor_sample": 2})
