"""Retraining queued by a deployment's alerts: the policy, the trigger, the cooldown and the internal route.

No replica runs here: deployment rows are written to the store directly and the app's lifespan
(which would launch their replicas) is not entered. The alert a real replica sends, and the
job it queues training and registering, are checked in tests/integration/test_server_retrain.py.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelyard.errors import StoreError
from modelyard.monitoring.alerts import CHECKS
from modelyard.server import ServerConfig, create_server_app
from modelyard.server.auth.tokens import TokenStore
from modelyard.server.deployments.replicas import ReplicaConfig
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.deployments.store import DeploymentStore
from modelyard.server.jobs.store import JobStore
from modelyard.server.retrain.trigger import on_alert
from modelyard.spec import load_spec
from modelyard.store import ModelStore
from tests.support.jobs import Clock
from tests.support.serving import register

pytestmark = pytest.mark.anyio
PUBLIC = "192.0.2.2"  # TEST-NET-1, as in tests/unit/server/auth
POLICY = {"on": ["output_shift"], "cooldown_s": 600, "overrides": ["train.epochs=2"]}


@asynccontextmanager
async def server(home: Path, host: str = "127.0.0.1") -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The control plane without its lifespan (no workers, no replicas) and the key its replicas get."""
    app = create_server_app(ServerConfig(host=host, port=8080, home=home), start_workers=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8080") as http:
        yield http, app.state.server.supervisor.alert_key


def deploy(home: Path, name: str = "web", **options: Any) -> str:
    """A monitored deployment row of a registered tiny classifier; returns the version's ref."""
    ref = register("clf", home)
    body = {"name": name, "model": ref, "monitor_sample": 1.0, "monitor_window": 50, **options}
    DeploymentStore(home).create(DeploymentRequest.parse(body), ref)
    return ref


def alert(ref: str, *checks: tuple[str, float | None], window: int = 50) -> dict[str, Any]:
    """The body a replica's monitor posts (serving/monitor.py)."""
    failed = [{"check": c, "message": f"{c.replace('_', ' ')}: ...", "p_value": p} for c, p in checks]
    name, _, version = ref.partition(":")
    return {
        "model": name,
        "version": int(version),
        "ref": ref,
        "window": window,
        "alerts": [f["message"] for f in failed],
        "checks": failed,
    }


def post(http: httpx.AsyncClient, key: str, body: Any, name: str = "web") -> Any:
    return http.post(f"/v1/internal/deployments/{name}/alerts", json=body, headers={"authorization": f"Bearer {key}"})


def one_line(answer: httpx.Response, status: int, *words: str) -> dict[str, str]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert "\n" not in body["message"] and all(w in body["message"] for w in words), body
    return body


async def test_an_alert_of_a_configured_check_queues_one_job_of_the_stored_spec_with_the_trigger(home: Path) -> None:
    ref = deploy(home, retrain=POLICY)
    async with server(home) as (http, key):
        answer = await post(http, key, alert(ref, ("feature_drift", 0.01), ("output_shift", 2e-6)))
        assert answer.status_code == 200, answer.text
        done = answer.json()
        assert done["queued"] is True and done["reason"] == "output_shift alert"
        job = (await http.get(f"/v1/jobs/{done['job']}")).json()
    # The version's own spec.json with the policy's overrides, as POST /v1/jobs would resolve it.
    want = load_spec(ModelStore(home).get(ref).load_spec(), ["train.epochs=2"]).to_dict()
    assert job["spec"] == want and job["spec"]["name"] == "clf" and job["spec"]["train"]["epochs"] == 2
    assert job["status"] == "queued" and job["submitted_by"] == "alert:web"
    trigger = job["trigger"]
    assert trigger.pop("at") == job["created_at"]
    assert trigger == {
        "deployment": "web",
        "model": "clf",
        "version": 1,
        "check": "output_shift",  # only the configured check counts
        "p_value": 2e-6,
        "window": 50,
        "checks": [{"check": "output_shift", "message": "output shift: ...", "p_value": 2e-6}],
    }
    assert [j.trigger for j in JobStore(home).list()] == [job["trigger"] | {"at": job["created_at"]}]


async def test_an_alert_of_an_unconfigured_check_or_a_deployment_without_policy_queues_nothing(home: Path) -> None:
    ref = deploy(home, retrain=POLICY)
    DeploymentStore(home).create(DeploymentRequest.parse({"name": "plain", "model": ref, "monitor_sample": 1}), ref)
    async with server(home) as (http, key):
        unconfigured = (await post(http, key, alert(ref, ("feature_drift", 1e-9), ("out_of_range", None)))).json()
        assert unconfigured == {
            "deployment": "web",
            "queued": False,
            "job": None,
            "reason": "no alert of output_shift in this window",
        }
        plain = (await post(http, key, alert(ref, ("output_shift", 1e-9)), name="plain")).json()
        assert plain["queued"] is False and plain["reason"] == "the deployment has no retrain policy"
    assert JobStore(home).list() == []


async def test_alerts_within_the_cooldown_queue_one_job_and_one_after_it_another(home: Path, clock: Clock) -> None:
    ref = deploy(home, retrain=POLICY)
    jobs = JobStore(home)
    async with server(home) as (http, key):
        first = (await post(http, key, alert(ref, ("output_shift", 1e-4)))).json()
        again = (await post(http, key, alert(ref, ("output_shift", 1e-6)))).json()
        assert again == {
            "deployment": "web",
            "queued": False,
            "job": first["job"],
            "reason": f"job {first['job']} is queued",
        }
        jobs.cancel(first["job"])  # ended: now only the cooldown holds a new one off
        clock.advance(599)
        cooling = (await post(http, key, alert(ref, ("output_shift", 1e-6)))).json()
        assert cooling["queued"] is False and cooling["reason"] == f"within cooldown_s 600 of {first['job']}"
        clock.advance(1)
        later = (await post(http, key, alert(ref, ("output_shift", 1e-6)))).json()
        assert later["queued"] is True and later["job"] != first["job"]
    assert len(jobs.list()) == 2


def test_concurrent_alerts_queue_one_job_even_without_cooldown(home: Path) -> None:
    ref = deploy(home, retrain={"on": ["output_shift"], "cooldown_s": 0})
    deployments, jobs, barrier = DeploymentStore(home), JobStore(home), threading.Barrier(6)
    answers: list[dict[str, Any]] = []

    def replica() -> None:
        barrier.wait()
        answers.append(
            on_alert(deployments, jobs, "web", alert(ref, ("output_shift", 1e-5)), access=None, max_attempts=1)
        )

    threads = [threading.Thread(target=replica) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a["queued"] for a in answers) == [False] * 5 + [True]
    assert len(jobs.list()) == 1 and {a["job"] for a in answers} == {jobs.list()[0].id}


async def test_bad_retrain_policies_are_one_line_422_naming_the_field_and_store_nothing(home: Path) -> None:
    ref = register("clf", home)
    base = {"name": "web", "model": ref, "monitor_sample": 1.0}
    cases = [
        ({"on": ["output_shfit"]}, "retrain.on[0]", "expected one of 'schema'"),
        ({"on": ["output_shift"], "cooldown_s": -1}, "retrain.cooldown_s", "expected a number >= 0, received -1"),
        ({"on": []}, "retrain.on", "at least 1 item"),
        ({"on": ["output_shift"], "every": 3}, "retrain", "unknown field 'every'"),
        ({"on": ["output_shift"], "overrides": ["train.epochs=-1"]}, "retrain.overrides", "cannot be retrained"),
        ({"on": ["output_shift"], "overrides": ["train.nope=1"]}, "retrain.overrides", "nope"),
    ]
    async with server(home) as (http, _):
        for policy, field, words in cases:
            body = one_line(await http.post("/v1/deployments", json=base | {"retrain": policy}), 422, words)
            assert body["field"] == field, body
        unmonitored = base | {"monitor_sample": 0, "retrain": {"on": ["output_shift"]}}
        body = one_line(await http.post("/v1/deployments", json=unmonitored), 422, "monitor_sample above 0")
        assert body["field"] == "retrain"
        assert (await http.get("/v1/deployments")).json() == {"deployments": []}
    assert JobStore(home).list() == []


async def test_the_internal_route_takes_only_the_replicas_key_on_loopback_and_off(home: Path) -> None:
    ref = deploy(home, retrain=POLICY)
    _, admin = TokenStore(home).create("admin")
    for host in ("127.0.0.1", PUBLIC):
        async with server(home, host) as (http, key):
            for headers in ({}, {"authorization": f"Bearer {admin}"}, {"authorization": "Bearer wrong"}):
                answer = await http.post(
                    "/v1/internal/deployments/web/alerts", json=alert(ref, ("output_shift", 1e-5)), headers=headers
                )
                one_line(answer, 401, "is internal", "no user token opens it")
            assert (await post(http, key, alert(ref, ("feature_drift", 1e-5)))).status_code == 200
            spec = (await http.get("/openapi.json", headers={"authorization": f"Bearer {admin}"})).json()
            assert not any(path.startswith("/v1/internal") for path in spec["paths"])
    assert JobStore(home).list() == []


async def test_alerts_that_do_not_fit_the_deployment_are_one_line_4xx(home: Path) -> None:
    ref = deploy(home, retrain=POLICY)
    async with server(home) as (http, key):
        one_line(await post(http, key, alert(ref, ("output_shift", 1e-5)), name="ghost"), 404, "Unknown deployment")
        one_line(await post(http, key, alert("clf:7", ("output_shift", 1e-5))), 409, "which serves clf:1")
        bad = alert(ref, ("outputs", 1e-5))
        one_line(await post(http, key, bad), 422, "`checks[0].check`", "received 'outputs'")
        one_line(await post(http, key, [1, 2]), 422, "expected a monitoring alert")
    with pytest.raises(StoreError):
        on_alert(
            DeploymentStore(home),
            JobStore(home),
            "web",
            alert("clf:2", ("output_shift", 0.0)),
            access=None,
            max_attempts=1,
        )
    assert JobStore(home).list() == []


def test_a_replica_gets_the_webhook_on_its_command_line_and_the_key_only_in_its_environment(tmp_path: Path) -> None:
    config = ReplicaConfig(
        ref="m:1",
        home=tmp_path,
        api_key="k",
        monitor_sample=1.0,
        monitor_webhook="http://127.0.0.1:8080/v1/internal/deployments/web/alerts",
        webhook_token="secret",
    )
    argv = config.command(4321)
    assert argv[argv.index("--monitor-webhook") + 1] == "http://127.0.0.1:8080/v1/internal/deployments/web/alerts"
    assert "secret" not in " ".join(argv)


def test_the_policy_names_exactly_the_checks_that_raise_alerts() -> None:
    from modelyard.server.retrain.policy import RetrainPolicy

    field = RetrainPolicy.model_json_schema()["properties"]["on"]["items"]
    assert tuple(field["enum"]) == CHECKS
