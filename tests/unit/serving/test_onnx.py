"""ONNX export checked against torch, the cached graph, and the auto backend choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.onnx_export import ONNX_FILE, ExportError, OnnxBackend, check_onnx, export_onnx
from modelyard.predict import Predictor
from modelyard.serving.backends import TorchBackend, select_backend
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


def test_auto_falls_back_to_torch_when_export_fails(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = Predictor.load(register("clf", home), home=home)

    def refuse(*_a: object, **_k: object) -> OnnxBackend:
        raise ExportError("Cannot export the network to ONNX: unsupported op")

    monkeypatch.setattr(OnnxBackend, "from_predictor", classmethod(refuse))
    choice = select_backend(predictor, "auto")
    assert choice.backend.name == "torch" and "unsupported op" in choice.info["reason"]
    with pytest.raises(ExportError):
        select_backend(predictor, "onnx")


def _plain(data: bytes, x: torch.Tensor) -> torch.Tensor:
    """Reference: a fresh ONNX Runtime session's plain ``run``."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


@pytest.mark.parametrize(
    "spec",
    [
        {"input": [6], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 3, "activation": "softmax"}]},
        {"input": [5], "layers": [{"embedding": 11, "dim": 4}, "flatten", {"dense": 2, "activation": "softmax"}]},
    ],
)
def test_io_bound_buffers_give_session_run_outputs_for_any_batch_size(spec: dict) -> None:
    from modelyard.nn import build_model

    torch.manual_seed(0)
    network = build_model(spec, loss="cross_entropy").eval()
    data = export_onnx(network)
    backend = OnnxBackend(data, threads=1)
    gen = torch.Generator().manual_seed(3)
    outputs = []
    for batch in (1, 3, 1, 7, 3, 0):
        if network.input_dtype == torch.int64:
            x = torch.randint(0, 11, (batch, 5), generator=gen)
        else:
            x = torch.randn(batch, 6, generator=gen)
        got = backend.predict_tensor(x)
        assert torch.equal(got, _plain(data, x)), batch
        array = backend.predict_array(x)
        assert isinstance(array, np.ndarray) and np.array_equal(array, got.numpy()), batch
        outputs += [(got, got.clone()), (torch.from_numpy(array), torch.from_numpy(array.copy()))]
    assert all(torch.equal(a, b) for a, b in outputs)  # earlier results are not overwritten by later calls
    with torch.inference_mode():  # buffers made in inference mode still work outside it, and back
        x = torch.zeros(2, *network.input_shape, dtype=network.input_dtype)
        backend.predict_tensor(x)
    assert torch.equal(backend.predict_tensor(x), _plain(data, x))


def test_io_binding_takes_strided_inputs_stays_bounded_and_is_thread_safe() -> None:
    from concurrent.futures import ThreadPoolExecutor

    import onnxruntime as ort

    from modelyard.nn import build_model

    torch.manual_seed(0)
    network = build_model(
        {"input": [6], "layers": [{"dense": 512, "activation": "relu"}, {"dense": 3}]}, loss="mse"
    ).eval()
    data = export_onnx(network)
    backend = OnnxBackend(data, threads=1)
    wide = torch.randn(4, 12)
    strided = wide[:, ::2]  # not contiguous
    assert torch.equal(backend.predict_tensor(strided), _plain(data, strided.contiguous()))
    offset = wide.reshape(-1)[6:30].reshape(4, 6)  # contiguous, starting 6 values into its storage
    assert offset.is_contiguous() and offset.storage_offset() == 6
    assert torch.equal(backend.predict_tensor(offset), _plain(data, offset.clone()))
    negated = torch._neg_view(offset)  # contiguous, but its bytes are the un-negated values
    assert negated.is_contiguous() and negated.is_neg()
    assert torch.equal(backend.predict_tensor(negated), _plain(data, -offset))
    rows = backend._bound.MAX_BYTES // backend._bound._per_sample + 1  # too big for bound buffers: session.run
    big = torch.randn(rows, 6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(backend.predict_tensor(torch._neg_view(big)), _plain(data, -big))
    grad = torch.randn(2, 6, requires_grad=True)  # takes the plain path, same answer
    assert torch.equal(backend.predict_tensor(grad), _plain(data, grad.detach()))

    for n in range(1, 24):  # 23 batch sizes seen, buffers kept for the 16 most recent
        backend.predict_tensor(torch.zeros(n, 6))
        backend.predict_tensor(torch.zeros(2, 6))  # used again and again: never the least recent
    kept = [shape[0] for shape in backend._bound._entries]
    assert len(kept) == backend._bound.MAX_SIZES and 2 in kept
    assert sorted(kept) == sorted({2, *range(9, 24)})
    for n in (2, 2, 17, 17, 2):  # repeats of the last shape and switches give the plain session's answers
        x = torch.randn(n, 6)
        assert torch.equal(backend.predict_tensor(x), _plain(data, x))

    # Many threads on one batch size share one set of buffers: each must get its own answer.
    inputs = [torch.randn(16, 6, generator=torch.Generator().manual_seed(i)) for i in range(300)]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    want = [torch.from_numpy(session.run(None, {"input": x.numpy()})[0]) for x in inputs]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(backend.predict_tensor, inputs))
    assert all(torch.equal(g, w) for g, w in zip(got, want))
