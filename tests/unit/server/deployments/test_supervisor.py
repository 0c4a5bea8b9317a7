"""Supervision of one replica (start, health, crash → backoff → restart, give up, stop) and
the deployment table and request body.

The replica here is a tiny stand-in HTTP process (no torch import, so each start takes
milliseconds); tests/integration/test_server_deploy.py runs real `modelyard serve` ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelyard.errors import NotFoundError, SpecError, StoreError
from modelyard.server.deployments.replicas import Replica, ReplicaConfig, stop_all, stop_orphan
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.deployments.store import DeploymentStore

FAKE = r"""
import http.server, signal, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "fail":
    print("loading the model", flush=True)
    print("error: Unknown model 'ghost': no models are registered yet", flush=True)
    sys.exit(4)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        healthy = not (mode == "sick" and self.path == "/healthz")
        self.send_response(200 if healthy else 500)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@dataclass(frozen=True)
class FakeConfig(ReplicaConfig):
    mode: str = "ok"

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-c", FAKE, str(port), self.mode]


def config(tmp_path: Path, mode: str = "ok", **options: object) -> FakeConfig:
    values = {"max_failures": 3, "backoff_s": (0.05, 0.2), "startup_timeout_s": 20.0, **options}
    return FakeConfig(ref="m:1", home=tmp_path, api_key="k" * 32, log_dir=tmp_path / "logs", mode=mode, **values)


def step_until(replica: Replica, http: httpx.Client, states: set[str], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while replica.state not in states:
        if time.monotonic() > deadline:
            pytest.fail(f"replica stayed {replica.state} (error {replica.error}); wanted {states}")
        replica.step(http, time.monotonic())
        time.sleep(0.02)


@pytest.fixture
def http() -> httpx.Client:
    with httpx.Client(timeout=httpx.Timeout(1.0, connect=0.5)) as client:
        yield client


@pytest.fixture
def replicas() -> list[Replica]:
    made: list[Replica] = []
    yield made
    stop_all(made, grace_s=1.0)


def test_crash_is_restarted_with_a_new_process(tmp_path: Path, http: httpx.Client, replicas: list[Replica]):
    replica = Replica(index=0, config=config(tmp_path))
    replicas.append(replica)
    replica.launch(time.monotonic())
    step_until(replica, http, {"running"})
    first_pid = replica.proc.pid
    assert httpx.get(f"{replica.base_url}/healthz").status_code == 200

    os.kill(first_pid, signal.SIGKILL)
    replica.proc.wait(5)
    replica.step(http, time.monotonic())
    assert replica.state == "backoff" and f"status {-signal.SIGKILL}" in replica.error
    step_until(replica, http, {"running"})
    assert replica.restarts == 1 and replica.proc.pid != first_pid
    assert replica.describe(time.monotonic())["pid"] == replica.proc.pid


def test_a_replica_that_keeps_failing_is_given_up_with_its_error(
    tmp_path: Path, http: httpx.Client, replicas: list[Replica]
):
    replica = Replica(index=0, config=config(tmp_path, "fail"))
    replicas.append(replica)
    replica.launch(time.monotonic())
    step_until(replica, http, {"failed"})
    assert replica.failures == 3 and replica.restarts == 2
    assert "gave up after 3 failures" in replica.error
    assert "Unknown model 'ghost': no models are registered yet" in replica.error  # the `error:` line of its log
    assert replica.describe(time.monotonic())["pid"] is None


def test_unhealthy_replica_is_killed_and_restarted(tmp_path: Path, http: httpx.Client, replicas: list[Replica]):
    replica = Replica(index=0, config=config(tmp_path, "sick", health_misses=2))
    replicas.append(replica)
    replica.launch(time.monotonic())
    step_until(replica, http, {"running"})
    proc = replica.proc
    step_until(replica, http, {"backoff"})
    assert "no answer from /healthz 2 times" in replica.error
    assert proc.poll() is not None  # the hung process was killed, not left behind


def test_stop_terms_then_kills(tmp_path: Path, http: httpx.Client):
    polite = Replica(index=0, config=config(tmp_path))
    stubborn = Replica(index=1, config=config(tmp_path, "ignore-term"))
    for replica in (polite, stubborn):
        replica.launch(time.monotonic())
        step_until(replica, http, {"running"})
    procs = [polite.proc, stubborn.proc]
    started = time.monotonic()
    stop_all([polite, stubborn], grace_s=1.0)
    assert procs[0].returncode == -signal.SIGTERM
    assert procs[1].returncode == -signal.SIGKILL
    assert 0.9 <= time.monotonic() - started < 8
    assert polite.state == stubborn.state == "stopped"


def test_stop_orphan_only_touches_modelyard_serve_processes():
    # argv after -c is only data for the child; it makes the command line look like a replica's.
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "modelyard", "serve", "--port", "45678"]
    )
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--port", "45678"])
    try:
        time.sleep(0.2)
        assert not stop_orphan(other.pid, 45678)
        assert not stop_orphan(fake.pid, 1)  # a recycled pid of another replica: wrong port
        assert stop_orphan(fake.pid, 45678)
        assert fake.wait(5) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for proc in (fake, other):
            proc.kill()
            proc.wait(5)


def test_request_body_is_validated_with_field_names():
    ok = DeploymentRequest.parse({"name": "web", "model": "digits-mlp:1"})
    assert (
        ok.replicas == 1
        and ok.backend == "auto"
        and ok.options()
        == {
            "max_batch_size": 64,
            "max_wait_ms": 2.0,
            "backend": "auto",
            "monitor_sample": 0.0,  # monitoring off, as `modelyard serve`
            "monitor_window": 500,
            "monitor_capacity": 10_000,
        }
    )
    cases = [
        ({"name": "Web!", "model": "m:1"}, "`name`"),
        ({"name": "web", "model": "m:1", "replicas": 0}, "`replicas`: expected a number >= 1, received 0"),
        ({"name": "web", "model": "m:1", "backend": "tpu"}, "`backend`"),
        ({"name": "web", "model": "m:1", "replica": 2}, "did you mean 'replicas'"),
        ({"name": "web"}, "Missing required field `model`"),
        ({"name": "web", "model": "m:1", "monitor_window": 1}, "`monitor_window`: expected a number >= 2"),
        # engine ray and its options (tests/unit/server/deployments/test_ray_engine.py runs one)
        (
            {"name": "web", "model": "m:1", "engine": "gpu"},
            "`engine`: expected one of 'local' or 'ray', received 'gpu'",
        ),
        (
            {"name": "web", "model": "m:1", "num_cpus": 0.5},
            "`num_cpus`: a Ray Serve option, expected with engine 'ray'",
        ),
        ({"name": "web", "model": "m:1", "engine": "ray", "num_cpus": 0}, "`num_cpus`: expected a number > 0"),
        (
            {"name": "web", "model": "m:1", "engine": "ray", "min_replicas": 3, "max_replicas": 2},
            "`min_replicas`: expected at most max_replicas (2), received 3",
        ),
        ({"name": "web", "model": "m:1", "engine": "ray", "monitor_sample": 0.1}, "`monitor_sample`: monitoring needs"),
    ]
    for body, expected in cases:
        with pytest.raises(SpecError, match=None) as info:
            DeploymentRequest.parse(body)
        assert expected in info.value.message, info.value.message
    with pytest.raises(SpecError, match="expected a JSON object"):
        DeploymentRequest.parse(["web"])
    ray = DeploymentRequest.parse({"name": "web", "model": "m:1", "engine": "ray", "replicas": 2, "num_cpus": 0.5})
    assert ray.options()["engine"] == "ray" and ray.options()["num_cpus"] == 0.5
    assert (ray.ray_options().min_replicas, ray.ray_options().max_replicas, ray.ray_options().num_cpus) == (2, 2, 0.5)
    scaled = DeploymentRequest.parse({"name": "web", "model": "m:1", "engine": "ray", "max_replicas": 3})
    assert (scaled.ray_options().min_replicas, scaled.ray_options().max_replicas) == (1, 3)


def test_store_refuses_duplicates_and_names_unknown_deployments(tmp_path: Path):
    store = DeploymentStore(tmp_path)
    with pytest.raises(NotFoundError, match="there are no deployments yet"):
        store.get("web")
    store.create(DeploymentRequest.parse({"name": "web", "model": "m:1", "replicas": 2}), "m:1")
    with pytest.raises(StoreError, match="'web' already exists"):
        store.create(DeploymentRequest.parse({"name": "web", "model": "m:2"}), "m:2")
    with pytest.raises(NotFoundError, match="did you mean 'web'"):
        store.get("wbe")
    store.update("web", status="running", restarts=3, state={"replicas": [{"pid": 1, "port": 2}]})
    row = store.get("web")
    assert (row.status, row.restarts, row.replicas, row.model_ref) == ("running", 3, 2, "m:1")
    assert [r.name for r in store.list(desired="running")] == ["web"]
    store.delete("web")
    assert store.list() == []


def test_engine_ray_without_ray_serve_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from modelyard.errors import MissingDependencyError
    from modelyard.server.deployments.supervisor import Supervisor
    from tests.support.serving import register

    ref = register("clf", tmp_path)
    monkeypatch.setitem(sys.modules, "ray.serve", None)  # as ray[train] without its serve extra
    supervisor = Supervisor(tmp_path)
    with pytest.raises(MissingDependencyError) as info:
        supervisor.create({"name": "web", "model": ref, "engine": "ray"})
    assert "pip install 'modelyard[ray]'" in info.value.message and "\n" not in info.value.message
    assert info.value.http_status == 501
    assert supervisor.store.list() == []  # refused before anything is stored
