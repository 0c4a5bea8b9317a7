"""Serving on Ray Serve: the same answers as the in-process ``modelyard serve`` app.

One local Ray cluster and one Serve application (2 replicas of 0.5 CPU) for the module. The reference
is the modelyard app itself, called in-process through ``httpx.ASGITransport``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modelyard.errors import SpecError
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.serving import API_KEY, register

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
from modelyard.serving.ray_serve import RayServeOptions, deploy, undeploy  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")

PORT = 18_765
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ROW = [[0.5, -1.0, 2.0, 0.25]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("rayhome")
    ref = register("clf", home)
    config = ServeConfig.make(port=PORT, api_key=API_KEY, backend="torch", max_body_bytes=2048)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    url = deploy([ref], config, RayServeOptions.make(num_cpus=0.5, min_replicas=2, max_replicas=2), home=home)
    yield url, ref, home, config
    undeploy()
    serve.shutdown()
    ray.shutdown()


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
