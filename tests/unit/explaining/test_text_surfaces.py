"""Token attributions through `modelyard explain --text` and the explain route: the Python API's
numbers, and bad text as one line (exit code / 4xx)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.explaining import explain
from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.cli import run_cli
from tests.support.serving import client
from tests.support.serving import register as register_served
from tests.support.text_models import LENGTH, register

pytest.importorskip("captum")
pytest.importorskip("tokenizers")

TEXTS = ["book a flight to paris", "what is my bank balance"]


def test_cli_text_prints_tokens_and_json_equals_the_python_api(home: Path, tmp_path: Path) -> None:
    ref = register("transformer", home)
    r = run_cli("explain", ref, "--text", TEXTS[0], "--text", TEXTS[1], "--json")
    assert r.code == 0, r.err
    want = explain(ref, TEXTS, home=home).to_dict(heatmaps=False)
    assert json.loads(r.out) == {**want, "heatmaps": []}

    r = run_cli("explain", ref, "--text", TEXTS[0], "--target", "bank")
    assert r.code == 0, r.err
    item = explain(ref, TEXTS[0], target="bank", home=home).to_dict()["explanations"][0]
    assert "probability of bank" in r.out and "convergence delta" in r.out
    assert TEXTS[0] in r.out  # the highlighted text
    lines = [line.split() for line in r.out.splitlines()]
    rows = [
        words for words in lines if words and words[-1][0] in "+-" and words[0] in {p["token"] for p in item["tokens"]}
    ]
    assert [words[0] for words in rows] == [p["token"] for p in item["tokens"]]
    assert [float(words[-1]) for words in rows] == pytest.approx([p["attribution"] for p in item["tokens"]], rel=1e-3)

    path = tmp_path / "texts.json"  # an instances file of strings works the same
    path.write_text(json.dumps({"instances": TEXTS}))
    assert json.loads(run_cli("explain", ref, str(path), "--json").out)["explanations"] == want["explanations"]


def test_cli_bad_text_is_one_line(home: Path, tmp_path: Path) -> None:
    ref = register("bag", home)
    path = tmp_path / "t.json"
    path.write_text('{"instances": ["x"]}')
    cases = [
        (("--text", ""), 3, "`instances[0]`: expected text with at least one token"),
        (("--text", "paris " * LENGTH), 3, f"expected at most {LENGTH} tokens"),
        ((), 2, "expected an INPUT file or --text, received neither"),
        ((str(path), "--text", "ok"), 2, "received both"),
        (("--text", "ok", "--method", "lime"), 2, "takes text, which is explained with integrated_gradients"),
    ]
    for args, code, message in cases:
        r = run_cli("explain", ref, *args)
        assert r.code == code and message in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    tabular = register_served("clf", home)
    r = run_cli("explain", tabular, "--text", "hello")
    assert r.code == 2 and "does not take text" in r.err


@pytest.mark.anyio
async def test_route_takes_text_instances_and_answers_as_the_python_api(home: Path) -> None:
    ref = register("lstm", home)
    app = create_app([Predictor.load(ref, home=home)], ServeConfig(backend="torch", max_text_chars=100))
    async with client(app) as http:
        r = await http.post("/v1/models/lstm/explain", json={"instances": TEXTS, "steps": 20})
        assert r.status_code == 200, r.text
        body = r.json()
        want = explain(ref, TEXTS, steps=20, home=home).to_dict()
        assert body["explanations"] == want["explanations"]
        assert body["details"]["baseline"].startswith("pad tokens")
        first = body["explanations"][0]
        assert [TEXTS[0][p["start"] : p["end"]] for p in first["tokens"] if not p["special"]] == TEXTS[0].split()
        predicted = await http.post("/v1/models/lstm/predict", json={"instances": TEXTS})
        probs = np.asarray([p["probabilities"] for p in predicted.json()["predictions"]])
        assert [e["output"] for e in body["explanations"]] == pytest.approx(probs.max(axis=1).tolist(), abs=1e-6)

        cases = [
            ({"instances": [""]}, 422, "`instances[0]`: expected text with at least one token"),
            ({"instances": ["x" * 101]}, 422, "`instances[0]`: expected at most 100 characters, received 101"),
            ({"instances": ["paris " * 6]}, 200, None),
            ({"instances": ["paris " * 15]}, 422, f"`instances[0]`: expected at most {LENGTH} tokens"),
            ({"instances": [3]}, 422, "`instances[0]`: expected a string"),
            ({"instances": ["ok"], "method": "saliency"}, 422, "explained with integrated_gradients"),
        ]
        for payload, status, message in cases:
            r = await http.post("/v1/models/lstm/explain", json=payload)
            assert r.status_code == status, (payload, r.text)
            if message:
                assert message in r.json()["message"] and "\n" not in r.json()["message"], r.json()
        r = await http.post("/v1/models/lstm/explain", content=b"\x89PNG", headers={"content-type": "image/png"})
        assert r.status_code == 415 and "text model lstm:1" in r.json()["message"]
