"""``engine: ray`` deployments of the control plane: created, listed, proxied and deleted like local ones.

One local Ray cluster for the module. A deployment of 2 Ray Serve replicas (0.5 CPU each) goes
through the control plane's deployment routes (``tests/support/console.mini_app``); its answers are
compared with the modelyard app itself called in-process, and a local row beside it is listed with
its own engine.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from modelyard.cli.deployments import _replicas
from modelyard.predict import Predictor
from modelyard.server.deployments.replicas import free_port
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.deployments.supervisor import Supervisor
from modelyard.serving import ServeConfig, create_app
from tests.support.console import client as mini_client
from tests.support.console import mini_app
from tests.support.serving import API_KEY, register

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")]

PORT = free_port()  # Ray's proxy; not a fixed number: other test runs may share the machine
ROW = [[0.5, -1.0, 2.0, 0.25]]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    serve.shutdown()
    ray.shutdown()


async def _local(ref: str, home: Path, body: dict) -> httpx.Response:
    """The reference answer: the modelyard app in-process."""
    app = create_app([Predictor.load(ref, home=home)], ServeConfig.make(api_key=API_KEY, backend="torch"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as local:
            path = f"/v1/models/{ref.split(':')[0]}/versions/{ref.split(':')[1]}/predict"
            return await local.post(path, json=body, headers={"Authorization": f"Bearer {API_KEY}"})


@pytest.mark.slow  # about 35 s: Ray starts two replicas that load torch, twice
async def test_engine_ray_deployment_is_created_listed_proxied_restored_and_deleted(cluster, tmp_path: Path) -> None:
    ref = register("clf", tmp_path)
    supervisor = Supervisor(tmp_path, poll_s=0.2, ray_port=PORT)
    # A local row beside it (its model does not exist, so nothing is launched): listed as engine local.
    supervisor.store.create(DeploymentRequest.parse({"name": "plain", "model": "m:1"}), "m:1")
    body = {"name": "web", "model": "clf", "engine": "ray", "replicas": 2, "num_cpus": 0.5, "backend": "torch"}
    try:
        async with mini_client(mini_app(tmp_path, supervisor)) as http:
            created = await http.post("/v1/deployments", json=body)
            assert created.status_code == 201, created.text
            assert created.json()["engine"] == "ray" and created.json()["model"] == ref
            shown = await _running(http, "web", 2)
            assert shown["replica_range"] == [2, 2] and shown["options"]["num_cpus"] == 0.5
            assert _replicas(shown) == "2/2"  # as `modelyard deployments list|show` print it
            listed = {d["name"]: d["engine"] for d in (await http.get("/v1/deployments")).json()["deployments"]}
            assert listed == {"plain": "local", "web": "ray"}

            # The same answers as modelyard serve, good and bad, through the control plane's proxy.
            for sent in ({"instances": ROW}, {"instances": [[1.0, 2.0]]}, {"rows": ROW}):
                got = await http.post("/v1/deployments/web/predict", json=sent)
                want = await _local(ref, tmp_path, sent)
                assert (got.status_code, got.json()) == (want.status_code, want.json())
            assert "modelyard-web" in serve.status().applications

        # A server stop removes the application but keeps the deployment; the next server brings it back.
        supervisor.stop()
        assert "modelyard-web" not in serve.status().applications
        supervisor = Supervisor(tmp_path, poll_s=0.2, ray_port=PORT)
        supervisor.start()
        async with mini_client(mini_app(tmp_path, supervisor)) as http:
            await _running(http, "web", 2)
            got = await http.post("/v1/deployments/web/predict", json={"instances": ROW})
            assert got.json() == (await _local(ref, tmp_path, {"instances": ROW})).json()

            gone = await http.delete("/v1/deployments/web")
            assert gone.status_code == 200 and gone.json()["status"] == "stopped"
            assert "modelyard-web" not in serve.status().applications
            missing = await http.post("/v1/deployments/web/predict", json={"instances": ROW})
            assert missing.status_code == 404 and "Unknown deployment 'web'" in missing.json()["message"]
    finally:
        supervisor.stop()


async def _running(http: httpx.AsyncClient, name: str, replicas: int) -> dict:
    """The deployment once it runs ``replicas`` replicas (at most 90 s)."""
    deadline, shown = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        shown = (await http.get(f"/v1/deployments/{name}")).json()
        if shown["status"] == "running" and len(shown["replicas"]) == replicas:
            return shown
        await asyncio.sleep(0.25)
    raise AssertionError(f"{name} not running {replicas} replicas in 90 s: {shown}")


def test_an_unreachable_ray_cluster_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.errors import ServerUnavailableError
    from modelyard.server.deployments import ray_engine

    def unreachable(**_: object) -> None:
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    with pytest.raises(
        ServerUnavailableError, match=r"^Cannot start or join a Ray cluster for engine ray: Could not find"
    ) as info:
        ray_engine.require_ray()
    assert "\n" not in info.value.message and info.value.http_status == 503
