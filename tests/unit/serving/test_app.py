"""The app in-process (httpx.ASGITransport): routes, answers vs Predictor, batching, metrics.

Bad-input cases live in unit/serving/test_bad_input.py; auth in unit/serving/test_auth.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from modelyard.store import ModelStore
from tests.support.serving import CLASS_NAMES, assert_same_predictions, client, instances, register

pytestmark = pytest.mark.anyio


def load(*names: str, home: Path) -> list[Predictor]:
    return [Predictor.load(register(name, home), home=home) for name in names]


async def test_predictions_are_identical_to_in_process_predict(home: Path) -> None:
    clf, reg = load("clf", "reg", home=home)
    app = create_app([clf, reg], ServeConfig(backend="torch"))
    x_clf, x_reg = instances("clf", 5), instances("reg", 3)
    async with client(app) as http:
        r1 = await http.post("/v1/models/clf/predict", json={"instances": x_clf})
        r2 = await http.post("/v1/models/reg/versions/1/predict", json={"instances": x_reg})
    assert r1.status_code == 200 and r2.status_code == 200
    body = r1.json()
    assert (body["model"], body["version"], body["ref"], body["backend"]) == ("clf", 1, "clf:1", "torch")
    assert body["predictions"] == clf.records(np.asarray(x_clf, dtype=np.float32))
    assert {p["label"] for p in body["predictions"]} <= set(CLASS_NAMES["clf"])
    assert r2.json()["predictions"] == reg.records(np.asarray(x_reg, dtype=np.float32))
    assert r2.json()["warnings"] == []


async def test_latest_and_explicit_versions_answer_with_their_own_weights(home: Path) -> None:
    v1 = Predictor.load(register("clf", home, seed=0), home=home)
    v2 = Predictor.load(register("clf", home, seed=1), home=home)
    app = create_app([v1, v2], ServeConfig(backend="torch"))
    x = instances("clf", 2)
    async with client(app) as http:
        latest = (await http.post("/v1/models/clf/predict", json={"instances": x})).json()
        first = (await http.post("/v1/models/clf/versions/1/predict", json={"instances": x})).json()
        missing = await http.post("/v1/models/clf/versions/3/predict", json={"instances": x})
        unknown = await http.post("/v1/models/nope/predict", json={"instances": x})
        bad_version = await http.post("/v1/models/clf/versions/one/predict", json={"instances": x})
    assert latest["version"] == 2 and latest["predictions"] == v2.records(x)
    assert first["version"] == 1 and first["predictions"] == v1.records(x)
    assert latest["predictions"] != first["predictions"]
    assert missing.status_code == 404 and "expected one of [1, 2]" in missing.json()["message"]
    assert unknown.status_code == 404 and "expected one of ['clf']" in unknown.json()["message"]
    assert bad_version.status_code == 422 and "version" in bad_version.json()["message"]


async def test_the_bare_name_answers_with_the_trained_version_not_a_newer_derived_one(home: Path) -> None:
    parent = register("clf", home, seed=0)
    student = register("clf", home, seed=1, lineage={"parent": parent, "operation": "distill"})
    served = [Predictor.load(ref, home=home) for ref in (parent, student)]
    x = instances("clf", 2)
    async with client(create_app(served, ServeConfig(backend="torch"))) as http:
        bare = (await http.post("/v1/models/clf/predict", json={"instances": x})).json()
        listing = (await http.get("/v1/models")).json()["models"]
    assert bare["ref"] == parent == "clf:1" and bare["predictions"] == served[0].records(x)  # was clf:2
    assert {m["ref"]: m["latest"] for m in listing} == {"clf:1": True, "clf:2": False}
    ModelStore(home).set_alias(student, "production")  # an explicit choice moves it
    served = [Predictor.load(ref, home=home) for ref in (parent, student)]
    async with client(create_app(served, ServeConfig(backend="torch"))) as http:
        chosen = (await http.post("/v1/models/clf/predict", json={"instances": x})).json()
    assert chosen["ref"] == student


async def test_model_listing_has_metadata_schema_and_backend(home: Path) -> None:
    app = create_app(load("clf", "img", home=home), ServeConfig(backend="torch", max_batch_size=8))
    async with client(app) as http:
        models = (await http.get("/v1/models")).json()["models"]
    by_ref = {m["ref"]: m for m in models}
    assert set(by_ref) == {"clf:1", "img:1"}
    clf = by_ref["clf:1"]
    assert clf["latest"] is True and clf["task"] == "classification"
    assert clf["input_schema"]["input_shape"] == [4] and clf["input_schema"]["class_names"] == CLASS_NAMES["clf"]
    assert by_ref["img:1"]["input_schema"]["input_shape"] == [1, 8, 8]
    assert clf["backend"]["name"] == "torch" and clf["batching"]["max_batch_size"] == 8
    assert "/v1/models/clf/predict" in clf["endpoints"]


async def test_health_readiness_and_openapi(home: Path) -> None:
    import httpx

    app = create_app(load("clf", home=home), ServeConfig(backend="torch"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as cold:
        assert (await cold.get("/readyz")).status_code == 503  # lifespan (warm-up) not run yet
        assert (await cold.get("/healthz")).status_code == 200
    async with client(app) as http:
        ready = await http.get("/readyz")
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
    assert ready.status_code == 200 and ready.json()["models"] == ["clf:1"]
    assert (
        "/v1/models/{name}/predict" in spec["paths"] and "/v1/models/{name}/versions/{version}/predict" in spec["paths"]
    )
    body = spec["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "image/png"} <= set(body)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_concurrent_requests_are_batched_and_a_bad_one_fails_alone(home: Path) -> None:
    (clf,) = load("clf", home=home)
    app = create_app([clf], ServeConfig(backend="torch", max_wait_ms=200, max_batch_size=64))
    xs = [instances("clf", 2, seed=s) for s in range(8)]
    async with client(app) as http:
        good = [http.post("/v1/models/clf/predict", json={"instances": x}) for x in xs]
        bad = http.post("/v1/models/clf/predict", json={"instances": [[1, 2]]})
        responses = await asyncio.gather(*good[:4], bad, *good[4:])
        metrics = (await http.get("/metrics")).text
    assert responses[4].status_code == 422
    answers = responses[:4] + responses[5:]
    for x, r in zip(xs, answers):
        assert r.status_code == 200
        assert_same_predictions(r.json()["predictions"], clf.records(x))  # rows computed in a batch of 16
    # 16 rows in at most a couple of forward passes, not 8.
    count = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith('modelyard_batch_size_count{model="clf"}')
        )
    )
    total = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith('modelyard_batch_size_sum{model="clf"}')
        )
    )
    assert total == 16 and count <= 2


async def test_metrics_count_requests_latency_batches_and_queue_depth(home: Path) -> None:
    app = create_app(load("clf", home=home), ServeConfig(backend="torch", max_wait_ms=0))
    async with client(app) as http:
        for _ in range(3):
            await http.post("/v1/models/clf/predict", json={"instances": instances("clf", 1)})
        await http.post("/v1/models/clf/predict", content=b"{")
        await http.post("/v1/models/nope/predict", json={"instances": [[1]]})
        text = (await http.get("/metrics")).text
    assert 'modelyard_requests_total{code="200",model="clf",route="/v1/models/{name}/predict"} 3.0' in text
    assert 'modelyard_requests_total{code="400",model="clf",route="/v1/models/{name}/predict"} 1.0' in text
    assert 'modelyard_requests_total{code="404",model="",route="/v1/models/{name}/predict"} 1.0' in text
    assert 'modelyard_request_latency_seconds_count{model="clf",route="/v1/models/{name}/predict"} 4.0' in text
    assert 'modelyard_batch_size_bucket{le="1.0",model="clf"} 3.0' in text
    assert 'modelyard_queue_depth{model="clf"} 0.0' in text


async def test_non_finite_model_outputs_give_a_defined_200_with_warnings(home: Path) -> None:
    (reg,) = load("reg", home=home)
    real = reg.predict_tensor

    def broken(features: torch.Tensor) -> torch.Tensor:
        out = real(features).clone()
        out[0, 1] = float("nan")
        return out

    reg.predict_tensor = broken  # type: ignore[method-assign]
    app = create_app([reg], ServeConfig(backend="torch", max_wait_ms=0))
    async with client(app) as http:
        r = await http.post("/v1/models/reg/predict", json={"instances": instances("reg", 2)})
        text = (await http.get("/metrics")).text
    assert r.status_code == 200
    body = r.json()
    assert body["predictions"][0]["value"][1] is None and body["predictions"][0]["value"][0] is not None
    assert None not in body["predictions"][1]["value"]
    assert "non-finite" in body["warnings"][0]
    assert 'modelyard_nonfinite_outputs_total{model="reg"} 1.0' in text


async def test_full_queue_is_503_with_retry_after_and_slow_answers_are_504(home: Path) -> None:
    (clf,) = load("clf", home=home)
    real = clf.predict_tensor

    def slow(features: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.3)
        return real(features)

    app = create_app([clf], ServeConfig(backend="torch", max_wait_ms=0, max_batch_size=1, max_queue=1, timeout_s=0.2))
    async with client(app) as http:
        clf.predict_tensor = slow  # type: ignore[method-assign]  # after the warm-up
        body = {"instances": instances("clf", 1)}
        running = asyncio.ensure_future(http.post("/v1/models/clf/predict", json=body))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(http.post("/v1/models/clf/predict", json=body))
        await asyncio.sleep(0.05)
        full = await http.post("/v1/models/clf/predict", json=body)
        late = await queued
        await running
    assert full.status_code == 503 and int(full.headers["retry-after"]) >= 1
    assert "overloaded" in full.json()["message"]
    assert late.status_code == 504 and "0.2 s timeout" in late.json()["message"]


async def test_a_client_that_disconnects_is_counted_as_499_not_500(home: Path) -> None:
    app = create_app(load("clf", home=home), ServeConfig(backend="torch", max_wait_ms=0))
    sent: list[dict] = []

    async def gone() -> dict:  # the client hung up before sending its body
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/models/clf/predict",
        "raw_path": b"/v1/models/clf/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    async with client(app) as http:
        await app(scope, gone, send)
        text = (await http.get("/metrics")).text
    assert not any(m["type"] == "http.response.start" for m in sent)  # nobody left to answer
    assert 'modelyard_requests_total{code="499",model="clf",route="/v1/models/{name}/predict"} 1.0' in text
    assert 'code="500"' not in text
