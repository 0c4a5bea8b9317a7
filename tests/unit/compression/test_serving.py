"""An int8 version's stored ONNX Runtime graph: made, checked and recorded at compression, served as is."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from modelyard.compression import compress
from modelyard.compression.api import parent_data
from modelyard.compression.onnx_graph import export_onnx
from modelyard.compression.onnx_int8 import INT8_AGREEMENT, checked_int8_graph
from modelyard.compression.quantize import quantize_network, stored_parameter_count
from modelyard.errors import ExportError
from modelyard.nn import build_model
from modelyard.predict import Predictor
from modelyard.serving.backends import select_backend
from modelyard.store.checksums import write_checksums
from modelyard.workflow import eval_split
from tests.support.cli import run_cli
from tests.support.compression import CONV, DENSE, train_digits


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A trained digits model and its int8 version, in their own store."""
    home = tmp_path_factory.mktemp("int8-serving")
    parent = train_digits(home)
    return home, parent, compress(parent, quantize="int8", home=home, rounds=1).model_ref


def _record(model: Predictor) -> dict:
    return json.loads(model.version.read_file("compression.json"))["onnx"]


def _plain_session(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_the_stored_graph_is_onnx_runtimes_int8_of_the_parent_and_its_check_is_recorded(
    int8: tuple[Path, str, str],
) -> None:
    home, parent_ref, ref = int8
    parent, model = Predictor.load(parent_ref, home=home), Predictor.load(ref, home=home)
    record = _record(model)
    data = (model.version.path / "model.int8.onnx").read_bytes()
    assert record["file"] == "model.int8.onnx" and record["sha256"] == hashlib.sha256(data).hexdigest()

    # Reference graph: plain ONNX Runtime dynamic quantization of the parent's exported fp32 graph.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fp32.onnx").write_bytes(export_onnx(parent.network))
        quantize_dynamic(str(Path(tmp) / "fp32.onnx"), str(Path(tmp) / "int8.onnx"), weight_type=QuantType.QInt8)
        reference = _plain_session((Path(tmp) / "int8.onnx").read_bytes())
    test = eval_split(parent_data(parent))[1]
    stored = _plain_session(data).run(None, {"input": test.x.numpy()})[0]
    np.testing.assert_array_equal(stored, reference.run(None, {"input": test.x.numpy()})[0])

    # The recorded check, recomputed: the graph against the torch int8 model on the whole test split.
    torch_int8 = model.predict_tensor(test.x).numpy()
    check = record["check"]
    assert (
        check["split"] == "test" and check["samples"] == len(test.x) and check["min_class_agreement"] == INT8_AGREEMENT
    )
    assert check["class_agreement"] == pytest.approx((stored.argmax(1) == torch_int8.argmax(1)).mean(), abs=1e-12)
    assert check["max_abs_diff"] == pytest.approx(np.abs(stored - torch_int8).max(), abs=1e-6)
    assert 0 < check["max_abs_diff"] < 0.5 and check["class_agreement"] >= INT8_AGREEMENT


def test_a_graph_that_fails_its_check_is_not_stored_and_the_record_says_why() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 20)
    other = build_model(DENSE, loss="cross_entropy").eval()  # another network's fp32 graph
    network = build_model(DENSE, loss="cross_entropy").eval()
    quantize_network(network, "dynamic")
    graph, record = checked_int8_graph(network, "dynamic", export_onnx(other), x)
    assert graph is None and record["file"] is None
    assert "expected the same class on at least 97% of 200 test samples" in record["reason"]
    graph, record = checked_int8_graph(network, "dynamic", None, x)
    assert graph is None and "no fp32 ONNX graph" in record["reason"]


def test_static_int8_conv_networks_store_torchs_own_int8_export(tmp_path: Path) -> None:
    torch.manual_seed(1)
    network = build_model(CONV, loss="cross_entropy").eval()
    x = torch.randn(128, 1, 10, 10)
    quantize_network(network, "static", x)
    graph, record = checked_int8_graph(network, "static", None, x)
    assert graph is not None and record["check"]["class_agreement"] >= INT8_AGREEMENT
    ops = {node.op_type for node in onnx.load_from_string(graph).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # int8 QDQ graph; ONNX Runtime fuses it into int8 kernels
    got = _plain_session(graph).run(None, {"input": x.numpy()})[0]
    with torch.inference_mode():
        want = network.probabilities(network(x)).numpy()
    assert np.abs(got - want).max() == pytest.approx(record["check"]["max_abs_diff"], abs=1e-6)


def test_backends_for_an_int8_version_use_the_stored_graph_and_never_export(
    int8: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    home, _, ref = int8
    model = Predictor.load(ref, home=home)

    def no_export(*_a: object, **_k: object) -> bytes:
        raise AssertionError("an int8 version must not be exported")

    monkeypatch.setattr("modelyard.serving.onnx_backend.export_graph", no_export)
    x = torch.rand(5, 64) * 3
    want = _plain_session((model.version.path / "model.int8.onnx").read_bytes()).run(None, {"input": x.numpy()})[0]
    with caplog.at_level(logging.INFO):
        onnx = select_backend(model, "onnx")
        auto = select_backend(model, "auto", max_batch_size=8, budget_s=0.1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # quiet: nothing failed
    assert onnx.backend.name == "onnx" and onnx.info["onnx_graph"] == "model.int8.onnx"
    assert onnx.info["onnx_check"] == _record(model)["check"]
    np.testing.assert_allclose(onnx.backend.predict_tensor(x).numpy(), want, atol=1e-6)

    info = auto.info  # auto timed torch int8 against ONNX Runtime int8 and kept the faster
    assert set(info["timings_ms"]) == {"torch", "onnx"} and info["onnx_graph"] == "model.int8.onnx"
    ratio = np.exp(
        np.mean([np.log(info["timings_ms"]["onnx"][k] / info["timings_ms"]["torch"][k]) for k in ("1", "2", "8")])
    )
    assert auto.backend.name == ("onnx" if ratio < 1.0 else "torch") == info["name"]

    plain = select_backend(model, "torch")
    assert plain.backend.name == "torch"
    torch.testing.assert_close(plain.backend.predict_tensor(x), model.predict_tensor(x), rtol=0, atol=0)


def test_an_int8_version_whose_graph_changed_or_is_missing_serves_with_torch(int8: tuple[Path, str, str]) -> None:
    home, _, ref = int8
    model = Predictor.load(ref, home=home)
    graph = model.version.path / "model.int8.onnx"
    description = model.version.path / "compression.json"
    original_graph, original_description = graph.read_bytes(), description.read_bytes()
    try:
        graph.write_bytes(export_onnx(Predictor.load(int8[1], home=home).network))  # some other valid graph
        choice = select_backend(model, "auto")
        assert choice.backend.name == "torch" and "is not the file that was checked" in choice.info["reason"]
        with pytest.raises(ExportError, match="expected sha256"):
            select_backend(model, "onnx")

        graph.write_bytes(original_graph)
        info = json.loads(original_description)
        info["onnx"] = {"file": None, "reason": "the int8 graph disagreed with torch"}
        description.write_text(json.dumps(info))
        write_checksums(model.version.path)  # as a version registered without a checked graph would be
        with pytest.raises(ExportError) as err:
            select_backend(model, "onnx")
        assert err.value.message == (
            f"Model {ref} is quantized to int8 and has no checked ONNX Runtime int8 graph "
            f"(model.int8.onnx): the int8 graph disagreed with torch"
        )
        assert select_backend(model, "auto").backend.name == "torch"
    finally:
        graph.write_bytes(original_graph)
        description.write_bytes(original_description)
        write_checksums(model.version.path)  # the registered files again


def test_models_show_counts_the_int8_weights(int8: tuple[Path, str, str]) -> None:
    home, parent_ref, ref = int8
    float_count = sum(p.numel() for p in Predictor.load(parent_ref, home=home).network.parameters())
    shown = run_cli("--home", str(home), "models", "show", ref, "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["parameters"] == float_count == 64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    table = run_cli("--home", str(home), "models", "show", ref)
    assert f"params={float_count:,}" in table.out and "4160" in table.out  # the first layer's row too


def test_stored_parameter_count_matches_the_float_network() -> None:
    for spec, mode in ((DENSE, "dynamic"), (CONV, "static")):
        network = build_model(spec, loss="cross_entropy").eval()
        want = sum(p.numel() for p in network.parameters())
        quantize_network(network, mode, torch.randn(16, *network.input_shape))
        assert sum(p.numel() for p in network.parameters()) < want  # what `parameters()` alone misses
        assert stored_parameter_count(network) == want
