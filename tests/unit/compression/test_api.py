"""compress/export through the Python API, the CLI and the server, on a small digits model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import modelyard
from modelyard.compression import compress, export
from modelyard.errors import InputError, NotFoundError, SpecError, UsageError
from modelyard.predict import Predictor
from modelyard.store import ModelStore
from tests.support.cli import run_cli
from tests.support.compression import digits_spec, student, train_digits


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One trained digits model for the whole module (its own store; tests pass home=)."""
    home = tmp_path_factory.mktemp("compress-home")
    return home, train_digits(home)


def _x(n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 16, size=(n, 64)).astype(np.float32)


def test_quantize_registers_a_child_with_lineage_that_loads_like_plain_torch(store: tuple[Path, str]) -> None:
    home, parent_ref = store
    result = compress(parent_ref, quantize="int8", home=home, rounds=2)
    child = ModelStore(home).get(result.model_ref)
    assert child.name == "digits" and child.version > 1  # same name, new version
    lineage = child.lineage
    assert lineage["parent"] == parent_ref and lineage["operation"] == "quantize"
    assert lineage["options"] == {"dtype": "int8", "mode": "dynamic"}
    assert lineage["metrics_before"]["accuracy"] == pytest.approx(result.rows[0].accuracy)
    assert lineage["metrics_after"]["weights_bytes"] < lineage["metrics_before"]["weights_bytes"] / 2
    assert json.loads(child.read_file("compression.json"))["quantization"]["mode"] == "dynamic"
    assert child.read_file("model.int8.onnx")[:2]  # ONNX Runtime's int8 graph is kept for export

    # Reference: plain torch's quantize_dynamic of the parent gives exactly the loaded child's outputs.
    parent = Predictor.load(parent_ref, home=home)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.ao.quantization.quantize_dynamic(parent.network.layers, {nn.Linear}, dtype=torch.qint8)
    loaded = modelyard.load(result.model_ref, home=home)
    features = parent.preprocess(_x())
    with torch.inference_mode():
        assert torch.equal(loaded.predict_tensor(features), torch.softmax(reference(features), dim=1))
    assert (loaded.predict(_x()).argmax(1) == parent.predict(_x()).argmax(1)).mean() >= 0.9
    assert abs(result.rows[1].accuracy - result.rows[0].accuracy) < 0.05
    assert set(result.speedup) == {f"{e}_b{b}" for e in ("torch", "onnxruntime", "served") for b in (1, 32)}
    # "As served": each row names the runtime `auto` picked and repeats that runtime's latencies.
    for row in result.rows:
        assert row.served_by in ("torch", "onnxruntime") and row.latency_ms["served"] == row.latency_ms[row.served_by]
        assert f"| {row.served_by} | yes |" in result.table()
    assert child.metrics["compression"][1]["served_by"] == result.rows[1].served_by
    assert result.served().startswith(f"as served (auto): parent on {result.rows[0].served_by}, quantize on ")


def test_prune_and_distill_record_what_was_done(store: tuple[Path, str]) -> None:
    home, parent_ref = store
    pruned = compress(parent_ref, prune=0.5, structured=True, finetune=1, name="digits-small", home=home, rounds=2)
    assert pruned.model_ref == "digits-small:1"
    small = Predictor.load(pruned.model_ref, home=home)
    assert [r.output_shape for r in small.network.records] == [(32,), (16,), (10,)]
    assert small.version.lineage["options"]["kept_units"] == {"model.layers[0]": 32, "model.layers[1]": 16}
    assert pruned.rows[1].parameters < pruned.rows[0].parameters / 2

    distilled = compress(parent_ref, distill=student(hidden=8), temperature=3, alpha=0.7, home=home, rounds=2)
    lineage = ModelStore(home).get(distilled.model_ref).lineage
    assert lineage["operation"] == "distill" and lineage["options"]["temperature"] == 3.0
    assert lineage["options"]["student_parameters"] == 64 * 8 + 8 + 8 * 10 + 10
    labels = [r.label for r in distilled.rows]
    assert labels == ["parent", "distill", "student without teacher"]
    assert distilled.rows[2].accuracy is not None and distilled.rows[2].parameters == distilled.rows[1].parameters


def test_bad_requests_are_one_line_errors_and_leave_the_store_alone(store: tuple[Path, str]) -> None:
    home, parent_ref = store
    before = [v.ref for v in ModelStore(home).list()]
    cases = [
        (dict(ref="nope:1", quantize="int8"), NotFoundError, "Unknown model 'nope'"),
        (dict(ref=parent_ref, quantize="int4"), InputError, "expected 'int8', received 'int4'"),
        (dict(ref=parent_ref), UsageError, "expected exactly one of --quantize, --prune, --distill, received none"),
        (dict(ref=parent_ref, quantize="int8", prune=0.5), UsageError, "received --quantize, --prune"),
        (dict(ref=parent_ref, prune=1.5), InputError, "between 0 and 1"),
        (dict(ref=parent_ref, prune=0.5, finetune=-1), InputError, "--finetune"),
        (dict(ref=parent_ref, distill=student(inputs=10)), SpecError, "expected [64] like the teacher"),
        (dict(ref=parent_ref, distill="missing.yaml"), SpecError, "Spec file not found"),
        (dict(ref=parent_ref, quantize="int8", name="Bad Name"), SpecError, "--name"),
        (dict(ref=parent_ref, quantize="int8", structured=True), UsageError, "`--structured`: it goes with --prune"),
        (dict(ref=parent_ref, prune=0.5, temperature=3.0), UsageError, "`--temperature`: it goes with --distill"),
        (
            dict(ref=parent_ref, distill=student(), alpha=2.0),
            InputError,
            "`--alpha`: expected a weight between 0 and 1",
        ),
    ]
    for kwargs, error, text in cases:
        ref = kwargs.pop("ref")
        with pytest.raises(error) as err:
            compress(ref, home=home, **kwargs)
        assert text in err.value.message and "\n" not in err.value.message, err.value.message
    assert [v.ref for v in ModelStore(home).list()] == before


def test_pruning_a_quantized_version_is_refused(store: tuple[Path, str]) -> None:
    home, parent_ref = store
    q = compress(parent_ref, quantize="int8", home=home, rounds=1)
    with pytest.raises(InputError, match="quantized to int8"):
        compress(q.model_ref, prune=0.5, home=home)


def test_cli_compress_and_export(store: tuple[Path, str], tmp_path: Path) -> None:
    home, parent_ref = store
    ok = run_cli("--home", str(home), "compress", parent_ref, "--prune", "0.3", "--finetune", "1", "--no-progress")
    assert ok.code == 0, ok.err
    assert "parent" in ok.out and "registered model digits:" in ok.out and "speed-up per runtime" in ok.out
    assert "as served (auto): parent on " in ok.out and "onnxruntime" in ok.out
    bad = run_cli("--home", str(home), "compress", parent_ref, "--prune", "lots")
    assert bad.code == 2 and bad.err.strip().count("\n") == 0  # click's FLOAT type: a usage error, one line
    assert bad.err.startswith("error: Invalid value for '--prune': 'lots' is not a valid float.")
    missing = run_cli("--home", str(home), "compress", "nope", "--quantize", "int8")
    assert missing.code == 4 and missing.err.startswith("error: Unknown model 'nope'")

    target = tmp_path / "digits.onnx"
    out = run_cli("--home", str(home), "export", parent_ref, "--format", "onnx", "--output", str(target), "--json")
    assert out.code == 0, out.err
    body = json.loads(out.out)
    assert target.is_file() and Path(body["path"]).read_bytes() == target.read_bytes()
    assert body["check"]["max_abs_diff"] < 1e-4
    lineage = ModelStore(home).get(body["model"]).lineage
    assert lineage["operation"] == "export" and lineage["parent"] == parent_ref
    assert [r["label"] for r in body["rows"]] == ["torch", "onnx"]
    assert body["rows"][1]["onnx_accuracy"] == pytest.approx(body["rows"][0]["accuracy"], abs=0.003)
    assert lineage["metrics_after"]["onnx_bytes"] == target.stat().st_size
    wrong = run_cli("--home", str(home), "export", parent_ref, "--format", "tflite")
    assert wrong.code == 2 and "Invalid value for '--format': 'tflite' is not 'onnx'." in wrong.err  # click's choice


def test_exported_graph_predicts_what_torch_predicts(store: tuple[Path, str]) -> None:
    import onnxruntime as ort

    home, parent_ref = store
    result = export(parent_ref, home=home)
    model = Predictor.load(parent_ref, home=home)
    features = model.preprocess(_x())
    session = ort.InferenceSession(result.path.read_bytes(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": features.numpy()})[0]
    np.testing.assert_allclose(got, model.predict_tensor(features).numpy(), atol=1e-5)

    q = compress(parent_ref, quantize="int8", home=home, rounds=1)
    int8 = export(q.model_ref, home=home)  # the ONNX Runtime int8 graph, held to the same classes
    assert int8.check["class_agreement"] >= 0.97


@pytest.mark.anyio
async def test_compressed_versions_serve_like_any_other(store: tuple[Path, str]) -> None:
    import httpx
    import onnxruntime as ort

    from modelyard.serving import ServeConfig, create_app

    home, parent_ref = store
    refs = [
        compress(parent_ref, quantize="int8", home=home, rounds=1).model_ref,
        compress(parent_ref, prune=0.5, home=home, rounds=1).model_ref,
    ]
    models = [Predictor.load(ref, home=home) for ref in refs]
    app = create_app(models, ServeConfig(backend="onnx"))
    x = _x(3).tolist()
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
            listing = {m["ref"]: m["backend"] for m in (await http.get("/v1/models")).json()["models"]}
            for model in models:
                r = await http.post(
                    f"/v1/models/{model.version.name}/versions/{model.version.version}/predict", json={"instances": x}
                )
                assert r.status_code == 200, r.text
                assert r.json()["backend"] == "onnx"
                got = [p["probabilities"] for p in r.json()["predictions"]]
                graph = model.version.path / listing[model.ref]["onnx_graph"]
                session = ort.InferenceSession(graph.read_bytes(), providers=["CPUExecutionProvider"])
                want = session.run(None, {"input": model.preprocess(np.asarray(x, dtype=np.float32)).numpy()})[0]
                np.testing.assert_allclose(got, want, atol=1e-6)  # the stored graph, run by plain ONNX Runtime
    int8 = listing[refs[0]]
    assert int8["onnx_graph"] == "model.int8.onnx"  # the stored int8 graph, never an export of the torch int8 module
    assert int8["onnx_check"] == json.loads(models[0].version.read_file("compression.json"))["onnx"]["check"]
    assert listing[refs[1]]["onnx_graph"] == "model.onnx" and listing[refs[1]]["onnx_max_abs_diff"] < 1e-4


def test_docs_commands_use_real_options() -> None:
    """Every `modelyard compress/export` line in docs/compression.md names options that exist."""
    import re

    from modelyard.cli.compress import compress as compress_cmd
    from modelyard.cli.export import export as export_cmd
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "compression.md").read_text()
    commands = {"compress": compress_cmd, "export": export_cmd}
    lines = re.findall(r"^modelyard (compress|export) (.*)$", text, flags=re.MULTILINE)
    assert {name for name, _ in lines} == {"compress", "export"}
    for name, rest in lines:
        known = {
            opt
            for param in commands[name].params
            for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", [])
        }
        for option in re.findall(r"(--[a-z-]+)", rest):
            assert option in known, f"docs use {option} with `modelyard {name}`"
    for call in re.findall(r"modelyard\.compress\((.*?)\)\n", text):
        for keyword in re.findall(r"(\w+)=", call):
            assert keyword in compress.__code__.co_varnames, keyword


def test_conv_models_get_static_int8_that_loads_and_exports(tmp_path: Path) -> None:
    spec = digits_spec(epochs=2)
    spec["data"]["preprocess"] = ["standardize", {"reshape": [1, 8, 8]}]
    spec["model"] = {
        "input": [1, 8, 8],
        "layers": [{"conv2d": 8, "kernel": 3, "activation": "relu"}, "flatten", {"dense": 10, "activation": "softmax"}],
    }
    ref = modelyard.train(spec, home=tmp_path, progress=False).model_ref
    result = compress(ref, quantize="int8", home=tmp_path, rounds=1)
    assert result.options == {"dtype": "int8", "mode": "static", "calibration_samples": 1024}
    loaded = modelyard.load(result.model_ref, home=tmp_path)
    assert any(isinstance(m, torch.ao.nn.quantized.Conv2d) for m in loaded.network.modules())
    assert abs(result.rows[1].accuracy - result.rows[0].accuracy) < 0.05
    assert result.rows[1].onnx_accuracy is not None  # torch exports static int8 to QLinear* operators
    exported = export(result.model_ref, home=tmp_path)
    assert exported.check["class_agreement"] >= 0.97
    assert (
        exported.path.read_bytes() == (loaded.version.path / "model.int8.onnx").read_bytes()
    )  # the stored, checked graph
    shown = run_cli("--home", str(tmp_path), "models", "show", result.model_ref)  # FX int8 layers, a folded-free count
    assert shown.code == 0, shown.err
    assert f"params={8 * 9 + 8 + 8 * 6 * 6 * 10 + 10:,}" in shown.out
    # Fine-tuning a conv net (trained channels_last) still reloads bit for bit (compress checks it).
    pruned = compress(ref, prune=0.5, structured=True, finetune=1, home=tmp_path, rounds=1)
    assert Predictor.load(pruned.model_ref, home=tmp_path).network.records[0].output_shape == (4, 6, 6)
