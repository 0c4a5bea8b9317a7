"""``?top_k`` and ``?min_confidence`` on the predict routes, against the in-process Predictor's probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.serving import CLASS_NAMES, client, instances, png, register

pytestmark = pytest.mark.anyio


def _reference_top(probs: list[float], names: list[str], k: int) -> list[dict[str, object]]:
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]  # ties: lower index first, as the server does
    return [{"label": names[i], "probability": probs[i]} for i in order]


async def test_top_k_lists_the_most_probable_classes_from_the_full_probabilities(home: Path) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    x = instances("clf", 6)
    async with client(create_app([clf], ServeConfig(backend="torch"))) as http:
        plain = (await http.post("/v1/models/clf/predict", json={"instances": x})).json()["predictions"]
        ranked = (await http.post("/v1/models/clf/predict?top_k=2", json={"instances": x})).json()["predictions"]
    want = clf.records(np.asarray(x, dtype=np.float32))
    assert plain == want  # no query: the answer is unchanged (no top, no rejected keys)
    for got, ref in zip(ranked, want):
        assert got["label"] == ref["label"] and got["probabilities"] == ref["probabilities"]
        assert got["top"] == _reference_top(ref["probabilities"], CLASS_NAMES["clf"], 2)
        assert got["top"][0]["label"] == ref["label"]
        assert "rejected" not in got


async def test_min_confidence_rejects_exactly_the_instances_below_it(home: Path) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    x = instances("clf", 16, seed=3)
    want = clf.records(np.asarray(x, dtype=np.float32))
    best = sorted(max(r["probabilities"]) for r in want)
    floor = (best[7] + best[8]) / 2  # half the instances fall below it
    async with client(create_app([clf], ServeConfig(backend="torch"))) as http:
        answer = await http.post(f"/v1/models/clf/versions/1/predict?min_confidence={floor!r}", json={"instances": x})
    assert answer.status_code == 200
    got = answer.json()["predictions"]
    for g, ref in zip(got, want):
        below = max(ref["probabilities"]) < floor
        assert g["rejected"] is below
        assert g["label"] == (None if below else ref["label"])
        assert g["probabilities"] == ref["probabilities"]
    assert sum(g["rejected"] for g in got) == 8


async def test_an_image_upload_takes_both_options_from_the_query_string(home: Path) -> None:
    img = Predictor.load(register("img", home), home=home)
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 8))
    async with client(create_app([img], ServeConfig(backend="torch"))) as http:
        answer = await http.post(
            "/v1/models/img/predict?top_k=3&min_confidence=0",
            content=png(pixels),
            headers={"content-type": "image/png"},
        )
    assert answer.status_code == 200
    (record,) = answer.json()["predictions"]
    ref = img.records(pixels[None].astype(np.float32))[0]
    assert record["top"] == _reference_top(ref["probabilities"], CLASS_NAMES["img"], 3)
    assert record["rejected"] is False and record["label"] == ref["label"]


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("top_k=0", "top_k", "from 1 to 3"),
        ("top_k=4", "top_k", "received '4'"),
        ("top_k=two", "top_k", "whole number"),
        ("min_confidence=1.5", "min_confidence", "from 0 to 1"),
        ("min_confidence=nan", "min_confidence", "received 'nan'"),
        ("top=3", "top", "expected one of top_k, min_confidence"),
        ("top_k=1&top_k=2", "top_k", "given twice"),
    ],
)
async def test_bad_options_are_one_line_422_naming_the_field(home: Path, query: str, field: str, words: str) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    async with client(create_app([clf], ServeConfig(backend="torch"))) as http:
        answer = await http.post(f"/v1/models/clf/predict?{query}", json={"instances": instances("clf", 1)})
    assert answer.status_code == 422
    body = answer.json()
    assert body["field"] == field and words in body["message"] and "\n" not in body["message"]


async def test_a_regression_model_refuses_the_options(home: Path) -> None:
    reg = Predictor.load(register("reg", home), home=home)
    async with client(create_app([reg], ServeConfig(backend="torch"))) as http:
        answer = await http.post("/v1/models/reg/predict?top_k=1", json={"instances": instances("reg", 1)})
    assert answer.status_code == 422 and "needs a classifier" in answer.json()["message"]


async def test_the_openapi_document_declares_the_query_parameters(home: Path) -> None:
    clf = Predictor.load(register("clf", home), home=home)
    async with client(create_app([clf], ServeConfig(backend="torch"))) as http:
        spec = (await http.get("/openapi.json")).json()
    names = [p["name"] for p in spec["paths"]["/v1/models/{name}/predict"]["post"]["parameters"]]
    assert names == ["name", "top_k", "min_confidence", "heatmap"]


def test_one_sigmoid_output_ranks_classes_zero_and_one() -> None:
    from modelyard.serving.ranking import Ranking, apply_ranking

    records = [{"label": 1, "probabilities": [0.8]}, {"label": 0, "probabilities": [0.45]}]
    apply_ranking(records, Ranking(top_k=2, min_confidence=0.6), None)
    assert records[0]["top"] == [{"label": 1, "probability": 0.8}, {"label": 0, "probability": pytest.approx(0.2)}]
    assert records[0]["rejected"] is False and records[0]["label"] == 1
    assert records[1]["top"][0] == {"label": 0, "probability": pytest.approx(0.55)}
    assert records[1]["rejected"] is True and records[1]["label"] is None


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
async def test_heatmap_equals_the_explain_routes_drawing_for_the_predicted_class(home: Path, method: str) -> None:
    from modelyard.explaining import Explainer

    img = Predictor.load(register("img", home), home=home)
    pixels = np.random.default_rng(1).integers(0, 256, size=(2, 8, 8))
    files = [("file", (f"{i}.png", png(p), "image/png")) for i, p in enumerate(pixels)]
    async with client(create_app([img], ServeConfig(backend="torch"))) as http:
        answer = await http.post(f"/v1/models/img/predict?heatmap={method}&top_k=2", files=files)
        explained = await http.post(f"/v1/models/img/explain?method={method}", files=files)
    assert answer.status_code == 200 and explained.status_code == 200
    body = answer.json()
    assert body["heatmap"] == {"method": method, "explained_output": explained.json()["explained_output"]}
    raw = pixels[:, None].astype(np.float32)  # N x 1 x 8 x 8, as the uploads decode
    want = img.records(raw)
    reference = Explainer(img).explain(raw, method=method).to_dict()["explanations"]
    for got, ref, route, direct in zip(body["predictions"], want, explained.json()["explanations"], reference):
        assert got["label"] == ref["label"] and got["probabilities"] == ref["probabilities"]
        assert len(got["top"]) == 2  # the other options still apply
        assert direct["label"] == ref["label"]  # explained for the predicted class
        assert got["heatmap_png"] == route["heatmap_png"] == direct["heatmap_png"]


async def test_heatmap_true_means_integrated_gradients_and_a_plain_request_has_none(home: Path) -> None:
    img = Predictor.load(register("img", home), home=home)
    pixels = np.random.default_rng(2).integers(0, 256, size=(8, 8))
    async with client(create_app([img], ServeConfig(backend="torch"))) as http:
        plain = await http.post("/v1/models/img/predict", content=png(pixels), headers={"content-type": "image/png"})
        drawn = await http.post(
            "/v1/models/img/predict?heatmap=true", content=png(pixels), headers={"content-type": "image/png"}
        )
    assert "heatmap" not in plain.json() and "heatmap_png" not in plain.json()["predictions"][0]
    assert drawn.json()["heatmap"]["method"] == "integrated_gradients"
    import base64

    assert base64.b64decode(drawn.json()["predictions"][0]["heatmap_png"]).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("model", "query", "status", "words"),
    [
        ("clf", "heatmap=saliency", 422, "needs an image model"),
        ("img", "heatmap=lime", 422, "expected one of integrated_gradients, ig, saliency or true"),
        ("img", "heatmap=ig&heatmap=ig", 422, "given twice"),
    ],
)
async def test_bad_heatmap_requests_are_one_line_422(
    home: Path, model: str, query: str, status: int, words: str
) -> None:
    served = Predictor.load(register(model, home), home=home)
    async with client(create_app([served], ServeConfig(backend="torch"))) as http:
        answer = await http.post(f"/v1/models/{model}/predict?{query}", json={"instances": instances(model, 1)})
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == "heatmap" and words in answer.json()["message"]
    assert "\n" not in answer.json()["message"]


async def test_integrated_gradient_heatmaps_obey_the_explain_cost_cap(home: Path) -> None:
    img = Predictor.load(register("img", home), home=home)
    async with client(create_app([img], ServeConfig(backend="torch", max_explain_cost=60))) as http:
        answer = await http.post("/v1/models/img/predict?heatmap=ig", json={"instances": instances("img", 2)})
        cheap = await http.post("/v1/models/img/predict?heatmap=saliency", json={"instances": instances("img", 2)})
    assert answer.status_code == 422 and "2 x 50 = 100" in answer.json()["message"]
    assert cheap.status_code == 200 and all("heatmap_png" in p for p in cheap.json()["predictions"])
