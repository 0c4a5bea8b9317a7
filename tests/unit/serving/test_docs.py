"""The examples in docs/serving.md run as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.serving import client, register

DOC = Path(__file__).resolve().parents[3] / "docs" / "serving.md"


@pytest.mark.anyio
async def test_the_curl_example_answers_what_the_docs_show(home: Path) -> None:
    text = DOC.read_text()
    command = re.search(r"\$ curl -s localhost:8000(\S+) .*?-d '(.+?)'\n(\{.+?\})\n", text, re.S)
    assert command is not None, "docs/serving.md lost its curl example"
    path, body, shown = command.group(1), command.group(2), json.loads(command.group(3))
    xor = Predictor.load(register("xor", home), home=home)
    async with client(create_app([xor], ServeConfig(backend="onnx"))) as http:
        r = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200
    got = r.json()
    assert got.keys() == shown.keys()
    assert {k: got[k] for k in ("model", "version", "ref", "backend", "warnings")} == {
        k: shown[k] for k in ("model", "version", "ref", "backend", "warnings")
    }
    assert [p.keys() for p in got["predictions"]] == [p.keys() for p in shown["predictions"]]


def test_the_documented_options_are_the_cli_options() -> None:
    from modelyard.cli.serve import serve

    documented = set(re.findall(r"^\| `(--[a-z-]+)` \|", DOC.read_text(), re.M))
    assert documented == {opt for p in serve.params for opt in p.opts if opt.startswith("--")}
