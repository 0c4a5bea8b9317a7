"""Bad input of every kind: one clear line, a non-zero exit, no traceback, an untouched store."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.support.cli import run_cli

CSV_SPEC = {
    "name": "tabular",
    "data": {"source": "csv", "path": "PLACEHOLDER", "target": "label", "test": 0.25},
    "model": {"input": [2], "layers": [{"dense": 2, "activation": "softmax"}]},
    "train": {"loss": "cross_entropy", "epochs": 1, "batch_size": 4},
}


def store_is_empty(home: Path) -> bool:
    if not home.exists():
        return True
    from modelyard.store import ModelStore, RunStore

    return RunStore(home).list() == [] and ModelStore(home).list() == []


def spec_file(tmp_path: Path, spec: dict) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def text_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def csv_spec(tmp_path: Path, text: str, **data) -> str:
    (tmp_path / "d.csv").write_text(text)
    spec = {**CSV_SPEC, "data": {**CSV_SPEC["data"], "path": str(tmp_path / "d.csv"), **data}}
    return spec_file(tmp_path, spec)


def image_folder(tmp_path: Path, odd_size: bool) -> str:
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), i * 30, np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    if odd_size:
        Image.fromarray(np.zeros((9, 7), np.uint8)).save(tmp_path / "imgs" / "b" / "odd.png")
    spec = {
        "name": "imgs",
        "data": {"source": "images", "path": str(tmp_path / "imgs"), "test": 0.25, "preprocess": ["scale"]},
        "model": {"input": [1, 8, 8], "layers": ["flatten", {"dense": 2, "activation": "softmax"}]},
        "train": {"loss": "cross_entropy", "epochs": 1, "batch_size": 2},
    }
    return spec_file(tmp_path, spec)


GOOD = "a,b,label\n" + "\n".join(f"{i % 3},{i % 5},{i % 2}" for i in range(12))
GOOD3 = "a,b,c,label\n" + "\n".join(f"{i % 3},{i % 5},{i % 7},{i % 2}" for i in range(12))

CASES = {
    "malformed yaml": (lambda t: text_file(t / "s.yaml", "name: [x\n"), 2, "Malformed spec file"),
    "unknown layer": (
        lambda t: spec_file(t, {**CSV_SPEC, "model": {"input": [2], "layers": [{"densse": 2}]}}),
        2,
        "did you mean 'dense'?",
    ),
    "missing data file": (
        lambda t: spec_file(t, {**CSV_SPEC, "data": {**CSV_SPEC["data"], "path": str(t / "no.csv")}}),
        3,
        "no.csv",
    ),
    "csv without target": (lambda t: csv_spec(t, GOOD.replace("label", "lbl")), 3, "label"),
    "nan in features": (lambda t: csv_spec(t, GOOD + "\nnan,1,0"), 3, "column 'a'"),
    "image of wrong size": (lambda t: image_folder(t, odd_size=True), 3, "odd.png"),
    "incompatible shapes": (
        lambda t: spec_file(t, {**CSV_SPEC, "model": {"input": [2], "layers": [{"conv2d": 4, "kernel": 3}]}}),
        2,
        "model.layers[0]",
    ),
    "input does not fit the data": (lambda t: csv_spec(t, GOOD3), 2, "model.input"),
    "classes do not fit the output": (lambda t: csv_spec(t, GOOD + "\n1,1,2\n2,2,2\n0,1,2"), 2, "3 classes"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_training_input(case, tmp_path, home):
    make, code, fragment = CASES[case]
    res = run_cli("train", make(tmp_path), "--no-progress")
    assert res.code == code, (res.code, res.err)
    assert res.err.startswith("error: ") and fragment in res.err
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
    assert store_is_empty(home)


def test_unknown_model_name_and_version(tmp_path, home):
    for args in (("eval", "ghost"), ("predict", "ghost", "x.json"), ("models", "show", "ghost:3")):
        res = run_cli(*args)
        assert res.code == 4 and "ghost" in res.err and len(res.err.strip().splitlines()) == 1
    assert store_is_empty(home)


def test_bad_prediction_inputs(tmp_path, home):
    res = run_cli("train", image_folder(tmp_path, odd_size=False), "--no-progress")
    assert res.code == 0, res.err
    before = (home / "modelyard.db").read_bytes() if (home / "modelyard.db").exists() else None
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "bad.json").write_text('{"instances": [[1, 2, 3]]}')
    (tmp_path / "nan.json").write_text(
        '{"instances": [[[' + ",".join(["NaN"] * 8) + "]" + ",[0,0,0,0,0,0,0,0]" * 7 + "]]}"
    )
    (tmp_path / "broken.json").write_text('{"instances": [[1, 2')
    (tmp_path / "garbage.png").write_bytes(b"not an image")
    expectations = {
        "big.png": "expected 8x8 pixels, received 28x28",
        "bad.json": "expected",
        "nan.json": "received NaN",
        "broken.json": "Malformed JSON",
        "garbage.png": "Cannot decode image",
    }
    for name, fragment in expectations.items():
        res = run_cli("predict", "imgs:1", str(tmp_path / name))
        assert res.code == 3, (name, res.err)
        assert fragment in res.err, (name, res.err)
        assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
    if before is not None:
        assert (home / "modelyard.db").read_bytes() == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CORRUPT = r"^error: The store at .* is corrupt: modelyard.db: file is not a database; restore .* from a backup"


STORE_COMMANDS = [
    ["runs"],
    ["runs", "show", "r-1"],
    ["models"],
    ["models", "show", "m:1"],
    ["models", "delete", "m:1"],
    ["models", "alias", "list"],
    ["models", "alias", "set", "m:1", "production"],
    ["models", "gc", "--dry-run"],
    ["runs", "delete", "r-1"],
    ["predict", "m:1", "x.json"],
    ["eval", "m:1"],
    ["explain", "m:1", "x.json"],
    ["export", "m:1"],
    ["compress", "m:1", "--quantize", "int8"],
    ["serve", "m:1", "--port", "PORT"],
    ["server", "--port", "PORT"],
]


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_a_corrupt_store_is_one_line_for_every_command(args, home, tmp_path):
    home.mkdir(parents=True, exist_ok=True)
    (home / "modelyard.db").write_bytes(b"garbage, not sqlite " * 300)
    (tmp_path / "x.json").write_text("[[0.0]]")
    port = str(free_port())
    res = run_cli(*[str(tmp_path / a) if a == "x.json" else port if a == "PORT" else a for a in args])
    assert res.code == 5, res.err
    lines = res.err.strip().splitlines()  # `serve` never announces an address it will not serve
    assert len(lines) == 1 and re.match(CORRUPT, lines[0]) and "sqlalche" not in res.err, res.err


@pytest.mark.anyio
async def test_a_corrupt_store_is_a_structured_error_from_the_server(home):
    import httpx

    from modelyard.server import ServerConfig, create_server_app

    app = create_server_app(ServerConfig(port=8080, home=home), start_workers=False)
    async with app.router.lifespan_context(app):
        from modelyard.store import db as store_db

        store_db.close_all()
        for suffix in ("-wal", "-shm"):
            (home / f"modelyard.db{suffix}").unlink(missing_ok=True)
        (home / "modelyard.db").write_bytes(b"garbage, not sqlite " * 300)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080") as http:
            for url in ("/v1/runs", "/v1/models", "/v1/jobs"):
                r = await http.get(url)
                assert r.status_code == 409 and "sqlalche" not in r.text, (url, r.text)
                assert re.match(CORRUPT[len("^error: ") :], r.json()["message"]), r.json()
