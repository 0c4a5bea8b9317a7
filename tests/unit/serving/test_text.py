"""Serving a text model: strings in, the same predictions as in process, limits, embeddings."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard import workflow
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.serving import assert_same_predictions, client, register

pytestmark = pytest.mark.anyio
pytest.importorskip("tokenizers")

WORDS = {"travel": ["flight", "train", "hotel", "trip", "paris"], "bank": ["balance", "account", "transfer", "money"]}


def _text_model(home: Path, tmp_path: Path) -> str:
    rng = random.Random(0)
    rows = []
    for i in range(300):
        label = ("travel", "bank")[i % 2]
        words = [rng.choice(WORDS[label]) for _ in range(rng.randint(1, 9))]
        rows.append(f"{' '.join(['please', *words])},{label}\n")
    (tmp_path / "q.csv").write_text("query,intent\n" + "".join(rows))
    spec = {
        "name": "intents",
        "data": {"source": {"csv": str(tmp_path / "q.csv"), "target": "intent", "text": "query"},
                 "preprocess": [{"tokenize": None, "max_length": 16, "vocab_size": 60, "min_frequency": 1}]},
        "model": {"input": [16], "layers": [{"embedding": 60, "dim": 16, "pad": 0}, {"token_pool": "mean"}, {"dense": 2}]},
        "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 0.05, "batch_size": 32, "epochs": 5, "metrics": ["accuracy"]},
    }  # fmt: skip
    result = workflow.train(spec, home=home, progress=False)
    assert result.test_metrics["accuracy"] > 0.9
    return result.model_ref


TEXTS = ["please book a flight to paris", "please money", "transfer my account balance please now ok", "hotel"]


async def test_text_instances_predict_as_in_process(home: Path, tmp_path: Path) -> None:
    ref = _text_model(home, tmp_path)
    predictor = Predictor.load(ref, home=home)
    app = create_app([predictor], ServeConfig(backend="torch"))
    async with client(app) as http:
        r = await http.post("/v1/models/intents/predict", json={"instances": TEXTS})
        assert r.status_code == 200, r.text
        assert_same_predictions(r.json()["predictions"], predictor.records(TEXTS))
        assert [p["label"] for p in r.json()["predictions"]][:2] == ["travel", "bank"]
        # A batch cut to its longest query answers as each query alone (the padding is ignored).
        alone = [
            (await http.post("/v1/models/intents/predict", json={"instances": [t]})).json()["predictions"][0]
            for t in TEXTS
        ]
        assert_same_predictions(r.json()["predictions"], alone, atol=1e-5)


async def test_bad_text_instances_are_422_naming_the_instance(home: Path, tmp_path: Path) -> None:
    ref = _text_model(home, tmp_path)
    app = create_app([Predictor.load(ref, home=home)], ServeConfig(backend="torch", max_text_chars=20))
    cases = [
        ({"instances": ["ok", 3]}, "`instances[1]`: expected a string, received a JSON number"),
        ({"instances": ["x" * 21]}, "`instances[0]`: expected at most 20 characters, received 21"),
        ({"instances": []}, "expected a list of strings (text instances), received an empty list"),
        ({"instances": [[1, 2]]}, "`instances[0]`: expected a string, received a JSON array"),
        ({"instances": ["a"], "extra": 1}, "unknown key(s) ['extra']"),
        (["a"], "expected a JSON object"),
    ]
    async with client(app) as http:
        for body, message in cases:
            r = await http.post("/v1/models/intents/predict", json=body)
            assert r.status_code == 422, (body, r.text)
            assert message in r.json()["message"], r.json()


async def test_embed_gives_the_pooled_vectors_of_the_full_length_network(home: Path, tmp_path: Path) -> None:
    ref = _text_model(home, tmp_path)
    predictor = Predictor.load(ref, home=home)
    register("clf", home)
    app = create_app([predictor, Predictor.load("clf", home=home)], ServeConfig(backend="torch", max_batch_size=4))
    async with client(app) as http:
        r = await http.post("/v1/models/intents/embed", json={"instances": TEXTS})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["dim"] == 16 and len(body["embeddings"]) == 4
        # Reference: embedding + mean pooling written out on the padded ids (no cutting).
        ids = predictor.preprocess(TEXTS)
        embedding = predictor.network.layers[0](ids)
        real = (ids != 0).unsqueeze(-1).float()
        want = ((embedding * real).sum(1) / real.sum(1)).detach().numpy()
        np.testing.assert_allclose(np.asarray(body["embeddings"]), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(predictor.embed(TEXTS), want, rtol=1e-5, atol=1e-6)
        too_many = await http.post("/v1/models/intents/embed", json={"instances": TEXTS + ["x"]})
        assert too_many.status_code == 422 and "at most 4 instances" in too_many.json()["message"]
        none = await http.post("/v1/models/clf/embed", json={"instances": [[0.0, 0.0, 0.0, 0.0]]})
        assert none.status_code == 404 and "has no embed route" in none.json()["message"]
    assert torch.equal(predictor.preprocess(TEXTS[1]), predictor.preprocess([TEXTS[1]]))
