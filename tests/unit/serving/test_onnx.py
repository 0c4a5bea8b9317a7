"""ONNX export checked against torch, the cached graph, and the auto backend choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.compression.onnx_graph import ONNX_FILE, check_onnx, export_onnx
from modelyard.errors import ExportError
from modelyard.predict import Predictor
from modelyard.serving.backends import TorchBackend, select_backend
from modelyard.serving.onnx_backend import OnnxBackend
from tests.support.serving import instances, register


@pytest.mark.parametrize("name", ["clf", "img", "reg"])
def test_onnx_backend_matches_torch_predict_tensor(name: str, home: Path) -> None:
    predictor = Predictor.load(register(name, home), home=home)
    backend = OnnxBackend.from_predictor(predictor)
    features = predictor.preprocess(np.asarray(instances(name, 7), dtype=np.float32))
    want = predictor.predict_tensor(features)
    got = backend.predict_tensor(features)
    assert got.shape == want.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert backend.max_abs_diff is not None and backend.max_abs_diff < 1e-4
    array = backend.predict_array(features)  # the serving call: the same values as numpy
    assert isinstance(array, np.ndarray) and array.dtype == np.float32 and np.array_equal(array, got.numpy())
    torch_backend = TorchBackend(predictor)
    assert np.array_equal(torch_backend.predict_array(features), want.numpy())


def test_export_is_cached_in_the_version_folder_and_a_stale_cache_is_replaced(home: Path) -> None:
    predictor = Predictor.load(register("clf", home), home=home)
    cached = predictor.version.path / ONNX_FILE
    OnnxBackend.from_predictor(predictor)
    assert cached.is_file()
    other = Predictor.load(register("clf", home, seed=5, as_name="other"), home=home)
    cached.write_bytes(export_onnx(other.network))  # a graph with different weights
    with pytest.raises(ExportError, match="disagrees with torch"):
        check_onnx(cached.read_bytes(), predictor.network)
    backend = OnnxBackend.from_predictor(predictor)  # detects the mismatch and exports again
    check_onnx(cached.read_bytes(), predictor.network)
    x = torch.randn(3, 4)
    torch.testing.assert_close(backend.predict_tensor(x), predictor.predict_tensor(x), rtol=1e-5, atol=1e-5)


def test_auto_times_both_backends_and_records_the_choice(home: Path) -> None:
    predictor = Predictor.load(register("clf", home), home=home)
    choice = select_backend(predictor, "auto", max_batch_size=8, budget_s=0.2)
    info = choice.info
    assert info["name"] == choice.backend.name and info["requested"] == "auto"
    assert set(info["timings_ms"]) == {"torch", "onnx"} and set(info["timings_ms"]["torch"]) == {"1", "2", "8"}
    ratio = np.exp(
        np.mean([np.log(info["timings_ms"]["onnx"][k] / info["timings_ms"]["torch"][k]) for k in ("1", "2", "8")])
    )
    assert (choice.backend.name == "onnx") == (ratio < 1.0)
    assert select_backend(predictor, "torch").backend.name == "torch"
    assert select_backend(predictor, "onnx").backend.name == "onnx"
    assert info["onnx_call"] == "bound-buffers"  # which call serves (modelyard.fast_paths can turn it off)


def test_auto_falls_back_to_torch_when_export_fails(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = Predictor.load(register("clf", home), home=home)

    def refuse(*_a: object, **_k: object) -> OnnxBackend:
        raise ExportError("Cannot export the network to ONNX: unsupported op")

    monkeypatch.setattr(OnnxBackend, "from_predictor", classmethod(refuse))
    choice = select_backend(predictor, "auto")
    assert choice.backend.name == "torch" and "unsupported op" in choice.info["reason"]
    with pytest.raises(ExportError):
        select_backend(predictor, "onnx")
