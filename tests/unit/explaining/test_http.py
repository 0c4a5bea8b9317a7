"""The explain routes in-process (httpx.ASGITransport): same answers as the Python API, bad input is 4xx."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelyard.explaining import explain
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app, explain_slots
from tests.support.explaining import int8_digits, int8_reference, register
from tests.support.serving import client, png
from tests.support.serving import register as register_served

pytestmark = pytest.mark.anyio
ROWS = [[1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.1, 2.0]]


@pytest.fixture
def app(home: Path):
    refs = [register("lin", home), register("lin", home), register_served("img", home)]
    return create_app([Predictor.load(r, home=home) for r in refs], ServeConfig(backend="torch"))


async def test_json_answers_equal_the_python_api(app, home: Path) -> None:
    async with client(app) as http:
        latest = await http.post("/v1/models/lin/explain", json={"instances": ROWS, "top": 2})
        first = await http.post("/v1/models/lin/versions/1/explain", json={"instances": ROWS, "method": "shap"})
        predicted = await http.post("/v1/models/lin/predict", json={"instances": ROWS})
    assert latest.status_code == 200 and first.status_code == 200 and predicted.status_code == 200
    body = latest.json()
    assert (body["model"], body["version"], body["ref"], body["method"]) == ("lin", 2, "lin:2", "integrated_gradients")
    want = explain("lin:2", np.asarray(ROWS, dtype=np.float32), top=2).to_dict()
    assert body["explanations"] == want["explanations"]
    assert len(body["explanations"][0]["top_features"]) == 2
    shap = first.json()["explanations"]
    np.testing.assert_allclose(
        [e["attributions"] for e in shap],
        explain("lin:1", np.asarray(ROWS, dtype=np.float32), method="shap").attributions,
    )
    assert [e["output"] for e in body["explanations"]] == pytest.approx(
        [p["value"][0] for p in predicted.json()["predictions"]]
    )


async def test_images_raw_and_multipart_get_heatmaps(app, home: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, size=(2, 8, 8)).astype(np.uint8)
    async with client(app) as http:
        raw = await http.post(
            "/v1/models/img/explain?method=saliency&target=two", content=png(a), headers={"content-type": "image/png"}
        )
        multi = await http.post(
            "/v1/models/img/explain?steps=20",
            files=[("file", ("a.png", png(a), "image/png")), ("file", ("b.png", png(b), "image/png"))],
        )
    assert raw.status_code == 200 and multi.status_code == 200, (raw.text, multi.text)
    item = raw.json()["explanations"][0]
    assert item["label"] == "two" and "convergence_delta" not in item
    with Image.open(io.BytesIO(base64.b64decode(item["heatmap_png"]))) as heat:
        assert heat.size == (8, 8)
    want = explain("img:1", a.reshape(1, 1, 8, 8).astype(np.float32), method="saliency", target="two")
    np.testing.assert_allclose(item["attributions"], want.attributions[0], rtol=1e-6)
    items = multi.json()["explanations"]
    assert len(items) == 2 and multi.json()["details"]["steps"] == 20
    for e in items:  # Captum's delta is exactly "sum of attributions - (f(x) - f(baseline))"
        assert abs(e["convergence_delta"]) < 1e-2
        assert e["attribution_sum"] - (e["output"] - e["baseline_output"]) == pytest.approx(
            e["convergence_delta"], abs=1e-5
        )


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "fragment"),
    [
        ("lin", {"json": {"instances": ROWS, "method": "gradcam"}}, 422, "expected one of integrated_gradients, lime"),
        ("lin", {"json": {"instances": ROWS, "method": "shapp"}}, 422, "did you mean 'shap'"),
        ("lin", {"json": {"instances": ROWS, "target": 3}}, 422, "`target`: expected an output index 0..0"),
        ("lin", {"json": {"instances": ROWS, "steps": 0}}, 422, "`steps`: expected a number >= 1"),
        ("lin", {"json": {"instances": ROWS, "stepz": 5}}, 422, "unknown field 'stepz'; did you mean 'steps'?"),
        ("lin", {"json": {"instances": [[1, 2, 3]]}}, 422, "expected a list of instances of shape [4]"),
        ("lin", {"json": {"method": "ig"}}, 422, "Missing field `instances`"),
        ("lin", {"json": [1, 2]}, 422, "expected a JSON object"),
        ("lin", {"json": {"instances": [[1, 2, 3, 4]] * 33}}, 413, "expected at most 32 per request, received 33"),
        ("lin", {"content": b"{bad", "headers": {"content-type": "application/json"}}, 400, "Malformed JSON"),
        ("lin", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "Unsupported Content-Type"),
        ("nope", {"json": {"instances": ROWS}}, 404, "not served here"),
        ("lin/versions/7", {"json": {"instances": ROWS}}, 404, "Version 7 of model 'lin'"),
        (
            "img",
            {"json": {"instances": [np.zeros((1, 8, 8)).tolist()], "method": "shap"}},
            422,
            "shap explains tabular models, and img:1 takes 8x8 images",
        ),
        ("img", {"content": b"GIF89a", "headers": {"content-type": "image/png"}}, 400, "expected a PNG or JPEG file"),
    ],
)
async def test_bad_requests_are_one_line_4xx(app, path: str, kwargs: dict, status: int, fragment: str) -> None:
    async with client(app) as http:
        r = await http.post(f"/v1/models/{path}/explain", **kwargs)
        ok = await http.post("/v1/models/lin/explain", json={"instances": ROWS[:1]})
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"] and "\n" not in r.json()["message"], r.json()
    assert ok.status_code == 200


async def test_concurrent_explanations_and_predictions(app) -> None:
    async with client(app) as http:
        results = await asyncio.gather(
            *[
                http.post("/v1/models/lin/explain", json={"instances": ROWS, "method": m})
                for m in ("ig", "saliency", "lime")
            ],
            *[http.post("/v1/models/lin/predict", json={"instances": ROWS}) for _ in range(5)],
        )
    assert [r.status_code for r in results] == [200] * 8
    assert [r.json()["method"] for r in results[:3]] == ["integrated_gradients", "saliency", "lime"]


async def test_waiting_explanations_are_capped_with_retry_after(app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explain_slots, "MAX_WAITING", 0)
    async with client(app) as http:
        r = await http.post("/v1/models/lin/explain", json={"instances": ROWS})
    # Nothing timed yet: one explanation is estimated at 1 s, and one is ahead of a new request.
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "explanations waiting" in r.json()["message"]


async def test_routes_are_documented_and_post_only(app) -> None:
    async with client(app) as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
        get = await http.get("/v1/models/lin/explain")
    assert "/v1/models/{name}/explain" in paths and "/v1/models/{name}/versions/{version}/explain" in paths
    assert "application/json" in paths["/v1/models/{name}/explain"]["post"]["requestBody"]["content"]
    assert get.status_code == 405


async def test_an_int8_version_is_explained_through_its_dequantized_weights(home: Path) -> None:
    _, ref = int8_digits(home)
    app = create_app([Predictor.load(ref, home=home)], ServeConfig(backend="torch"))
    rows = np.random.default_rng(1).normal(size=(2, 64)).astype(np.float32)
    async with client(app) as http:
        answer = await http.post("/v1/models/digits/explain", json={"instances": rows.tolist(), "steps": 20})
    assert answer.status_code == 200, answer.text  # was: 500 internal error
    body = answer.json()
    assert body["ref"] == ref and "dequantized float weights" in body["details"]["note"]
    targets, want = int8_reference(ref, home, rows, steps=20)  # the int8 model's classes, explained
    assert [e["target"] for e in body["explanations"]] == targets
    np.testing.assert_allclose([e["attributions"] for e in body["explanations"]], want, rtol=1e-5, atol=1e-7)
