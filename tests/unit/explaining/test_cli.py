"""`modelyard explain`: the same attributions as the Python API, top features, heatmaps, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelyard.explaining import explain
from tests.support.cli import run_cli
from tests.support.explaining import int8_digits, int8_reference, register
from tests.support.serving import png
from tests.support.serving import register as register_served

ROWS = [[1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.1, 2.0]]


def size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.fixture
def lin(home: Path, tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"instances": ROWS}))
    return register("lin", home), path


def test_json_output_matches_the_python_api(lin: tuple[str, Path]) -> None:
    ref, path = lin
    r = run_cli("explain", ref, str(path), "--json", "--top", "3")
    assert r.code == 0, r.err
    body = json.loads(r.out)
    want = explain(ref, np.asarray(ROWS, dtype=np.float32), top=3).to_dict(heatmaps=False)
    assert body == {**want, "heatmaps": []}
    assert len(body["explanations"][0]["top_features"]) == 3


def test_table_lists_top_features_per_instance(lin: tuple[str, Path], tmp_path: Path) -> None:
    ref, _ = lin
    csv = tmp_path / "rows.csv"  # columns by name, in another order, plus a target column
    csv.write_text("x4,x3,x2,x1,y\n0.5,-1.0,2.0,1.0,9\n")
    r = run_cli("explain", ref, str(csv), "--method", "shap", "--top", "2")
    assert r.code == 0, r.err
    assert "lin:1  shap" in r.out and "#0  output 0:" in r.out and "sum of attributions" in r.out
    first = explain(ref, np.asarray([ROWS[0]], dtype=np.float32), method="shap").top_features(0, 2)
    lines = r.out.splitlines()
    rows = [line.split() for line in lines if line.strip().startswith(("x1", "x2", "x3", "x4"))]
    assert [row[0] for row in rows] == [f["feature"] for f in first]
    assert float(rows[0][2]) == pytest.approx(first[0]["contribution"], rel=1e-3)


def test_image_input_writes_heatmaps(home: Path, tmp_path: Path) -> None:
    ref = register_served("img", home)
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 8)).astype(np.uint8)
    image = tmp_path / "in.png"
    image.write_bytes(png(pixels))
    out = tmp_path / "heat.png"
    r = run_cli("explain", ref, str(image), "--heatmap", str(out), "--scale", "4", "--target", "two")
    assert r.code == 0, r.err
    assert "probability of two" in r.out and "convergence delta" in r.out and str(out) in r.out
    assert size(out) == (32, 32)
    batch = tmp_path / "batch.npy"
    np.save(batch, np.stack([pixels, pixels]).reshape(2, 1, 8, 8).astype(np.float32))
    r = run_cli("explain", ref, str(batch), "--heatmap", str(tmp_path / "b.png"), "--method", "saliency")
    assert r.code == 0, r.err
    assert size(tmp_path / "b-0.png") == (64, 64) and (tmp_path / "b-1.png").exists()
    r = run_cli("explain", ref, str(image))
    assert "--heatmap OUT.png" in r.out


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--method", "shapp"], 2, "did you mean 'shap'"),
        (["--target", "11"], 2, "`target`: expected an output index 0..0"),
        (["--steps", "0"], 2, "`steps`: expected a number >= 1"),
        (["--heatmap", "x.png"], 2, "`--heatmap`: model lin:1 does not take images"),
    ],
)
def test_bad_options_are_one_line_errors(lin: tuple[str, Path], args: list[str], code: int, fragment: str) -> None:
    ref, path = lin
    r = run_cli("explain", ref, str(path), *args)
    assert r.code == code and fragment in r.err, r.err
    assert r.err.startswith("error: ") and r.err.count("\n") == 1 and "Traceback" not in r.err


def test_bad_inputs_and_unknown_models(lin: tuple[str, Path], tmp_path: Path) -> None:
    ref, _ = lin
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[[1, 2, 3]]")
    r = run_cli("explain", ref, str(wrong))
    assert r.code == 3 and "expected input of shape [4]" in r.err
    r = run_cli("explain", ref, str(tmp_path / "missing.json"))
    assert r.code == 3 and "Input file not found" in r.err
    r = run_cli("explain", "nope", str(wrong))
    assert r.code == 4 and "Unknown model 'nope'" in r.err


def test_the_docs_list_every_option_and_method() -> None:
    import re

    from modelyard.cli.explain import explain as command
    from modelyard.explaining import METHODS
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "explain.md").read_text()
    documented = {
        opt for cell in re.findall(r"^\| (`-[^|]+) \|", doc, re.MULTILINE) for opt in re.findall(r"`(-[-a-z]+)", cell)
    }
    assert documented == {opt for p in command.params for opt in p.opts if opt.startswith("-")} - {"-h", "--help"}
    assert all(f"| `{name}`" in doc for name in METHODS.names())


def test_an_int8_version_is_explained_through_its_dequantized_weights(home: Path, tmp_path: Path) -> None:
    _, ref = int8_digits(home)  # digits:2 (the bare name stays on the trained digits:1)
    rows = np.random.default_rng(0).normal(size=(2, 64)).astype(np.float32)
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"instances": rows.tolist()}))
    r = run_cli("explain", ref, str(path), "--json", "--steps", "20")
    assert r.code == 0, r.err  # was: internal error (RuntimeError: The differentiated Tensor ... not used)
    body = json.loads(r.out)
    assert body["model"] == ref and body["details"]["weights"] == "dequantized int8"
    assert "dequantized float weights" in body["details"]["note"]
    targets, want = int8_reference(ref, home, rows, steps=20)  # the int8 model's classes, explained
    assert [e["target"] for e in body["explanations"]] == targets
    got = np.asarray([e["attributions"] for e in body["explanations"]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert body["details"]["dequantized_max_abs_diff"] < 0.05
    table = run_cli("explain", ref, str(path), "--method", "saliency")
    assert table.code == 0, table.err
    assert "attributions were computed on its dequantized float weights" in table.out
