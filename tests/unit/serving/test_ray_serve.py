"""Serving on Ray Serve: the same answers as the in-process ``modelyard serve`` app.

One local Ray cluster and one Serve application (2 replicas of 0.5 CPU) for the module. The reference
is the modelyard app itself, called in-process through ``httpx.ASGITransport``. The replica-kill test
runs after the answer tests (it leaves the application replacing a replica); the autoscaling test
deploys a second application of 0.25-CPU replicas beside it. Ray's autoscaling metrics are pushed
every 0.5 s here instead of 10 s so that scaling shows within seconds.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from modelyard.errors import SpecError
from modelyard.predict import Predictor
from modelyard.server.deployments.replicas import free_port
from modelyard.serving import ServeConfig, create_app
from tests.support.serving import API_KEY, register

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
from modelyard.serving.ray_retry import RETRIES_HEADER  # noqa: E402
from modelyard.serving.ray_serve import RayServeOptions, deploy, replica_count, undeploy  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")

PORT = free_port()  # Ray's proxy; not a fixed number: other test runs may share the machine
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ROW = [[0.5, -1.0, 2.0, 0.25]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("rayhome")
    ref = register("clf", home)
    # Requests wait up to 300 ms in a replica's batcher, so that a killed replica has requests in flight.
    config = ServeConfig.make(port=PORT, api_key=API_KEY, backend="torch", max_body_bytes=2048, max_wait_ms=300)
    pushed = {f"RAY_SERVE_{who}_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5" for who in ("HANDLE", "REPLICA")}
    saved = {k: os.environ.get(k) for k in pushed}
    os.environ.update(pushed)  # the local cluster's processes inherit the environment of ray.init
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    url = deploy([ref], config, RayServeOptions.make(num_cpus=0.5, min_replicas=2, max_replicas=2), home=home)
    yield url, ref, home, config
    undeploy()
    serve.shutdown()
    ray.shutdown()
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_options_refuse_bad_values_in_one_line() -> None:
    with pytest.raises(SpecError, match="min_replicas \\(3\\) must be at most max_replicas \\(2\\)"):
        RayServeOptions.make(min_replicas=3, max_replicas=2)
    with pytest.raises(SpecError, match="num_cpus") as info:
        RayServeOptions.make(num_cpus=0)
    assert "\n" not in info.value.message
    assert (
        RayServeOptions.make(min_replicas=1, max_replicas=3).deployment_options()["autoscaling_config"]["max_replicas"]
        == 3
    )


async def _local(ref: str, home: Path, config: ServeConfig, path: str, body: dict, headers: dict) -> httpx.Response:
    """The reference answer: the modelyard app in-process."""
    app = create_app([Predictor.load(ref, home=home)], config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{PORT}") as local:
            return await local.post(path, json=body, headers=headers)


BAD = [
    ("predict", {}, {"instances": ROW}),  # no key: 401
    ("predict", {"Authorization": "Bearer wrong-key-0123456789"}, {"instances": ROW}),
    ("predict", AUTH, {"instances": [[0.0] * 4] * 200}),  # over max_body_bytes: 413
    ("predict", AUTH, {"instances": [[1.0, 2.0]]}),  # wrong shape: 4xx
    ("predict", AUTH, {"rows": ROW}),  # unknown field
    ("missing", AUTH, {"instances": ROW}),  # unknown model: 404
]


@pytest.mark.anyio
@pytest.mark.parametrize(("model", "headers", "body"), BAD + [("predict", AUTH, {"instances": ROW})])
async def test_ray_serve_answers_as_modelyard_serve(served, model, headers, body) -> None:
    url, ref, home, config = served
    path = "/v1/models/clf/predict" if model == "predict" else "/v1/models/nope/predict"
    want = await _local(ref, home, config, path, body, headers)
    got = httpx.post(url + path, json=body, headers=headers, timeout=30)
    assert got.status_code == want.status_code
    assert got.json() == want.json()


def _replicas(app: str) -> list[str]:
    """Names of the application's replica actors (Ray Serve's naming: SERVE_REPLICA::APP#DEPLOYMENT#ID)."""
    from ray.util import list_named_actors

    return [a["name"] for a in list_named_actors(all_namespaces=True) if a["name"].startswith(f"SERVE_REPLICA::{app}#")]


async def _local_answers(ref: str, home: Path, config: ServeConfig, path: str, bodies: list[dict]) -> list[dict]:
    app = create_app([Predictor.load(ref, home=home)], config)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as local:
            return [(await local.post(path, json=body, headers=AUTH)).json() for body in bodies]


@pytest.mark.anyio
async def test_a_killed_replica_loses_no_accepted_request(served) -> None:
    url, ref, home, config = served
    path = "/v1/models/clf/predict"
    bodies = [{"instances": [[i / 8, -1.0, 2.0, 0.25]]} for i in range(24)]
    want = await _local_answers(ref, home, config, path, bodies)
    replicas = [ray.get_actor(name, namespace="serve") for name in _replicas("modelyard")]
    assert len(replicas) == 2

    def post(body: dict) -> httpx.Response:
        return httpx.post(url + path, json=body, headers=AUTH, timeout=60)

    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = [pool.submit(post, body) for body in bodies]
        ongoing, deadline = [0, 0], time.monotonic() + 5
        while max(ongoing) < 4 and time.monotonic() < deadline:  # accepted requests wait in the batchers (300 ms)
            ongoing = ray.get([r.get_num_ongoing_requests.remote() for r in replicas])
        victim = max(range(2), key=ongoing.__getitem__)
        ray.kill(replicas[victim], no_restart=True)
        got = [f.result() for f in futures]
    assert [r.status_code for r in got] == [200] * len(bodies)
    for answer, expected in zip((r.json() for r in got), want, strict=True):  # batched rows: float32 rounding apart
        assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in expected["predictions"]]
        assert answer["predictions"][0]["probabilities"] == pytest.approx(
            expected["predictions"][0]["probabilities"], abs=1e-6
        )
    # The kill did hit accepted requests: the proxy answered each of them from the other replica.
    assert ongoing[victim] >= 4
    assert sum(bool(r.headers.get(RETRIES_HEADER.decode())) for r in got) >= 1


@pytest.mark.slow  # about 25 s: the load, then the wait for the replicas to go
def test_autoscaling_adds_replicas_under_load_and_removes_them_after(served) -> None:
    url, ref, home, config = served
    options = RayServeOptions.make(
        num_cpus=0.25,
        min_replicas=1,
        max_replicas=3,
        target_ongoing_requests=2,
        upscale_delay_s=0.5,
        downscale_delay_s=2,
        look_back_period_s=2,
    )
    scaled = deploy([ref], config, options, home=home, app_name="scaling", route_prefix="/scaling")
    try:
        assert replica_count("scaling") == 1
        stop, codes = threading.Event(), []

        def client() -> None:  # one of 16 clients, each sending one request after the other until stopped
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    body = {"instances": ROW}
                    codes.append(http.post(scaled + "/v1/models/clf/predict", json=body, headers=AUTH).status_code)

        clients = [threading.Thread(target=client) for _ in range(16)]
        for t in clients:
            t.start()
        peak, deadline = 1, time.monotonic() + 30  # bounded: at most 30 s of load
        while peak < 2 and time.monotonic() < deadline:
            time.sleep(0.25)
            peak = max(peak, replica_count("scaling"))
        stop.set()
        for t in clients:
            t.join()
        assert peak >= 2, "16 clients on one replica (target 2 ongoing requests) did not add a replica in 30 s"
        assert codes and set(codes) == {200}
        deadline = time.monotonic() + 40
        while replica_count("scaling") > 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert replica_count("scaling") == 1
    finally:
        undeploy("scaling")
