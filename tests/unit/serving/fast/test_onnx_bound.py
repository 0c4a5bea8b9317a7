"""The ONNX Runtime bound-buffer call (serving.fast.onnx_bound) against the plain session.run, and its fence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard import fast_paths
from modelyard.compression.onnx_graph import export_onnx
from modelyard.serving.fast import onnx_bound
from modelyard.serving.onnx_backend import OnnxBackend


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


def _small_graph() -> tuple[bytes, torch.Tensor]:
    from modelyard.nn import build_model

    torch.manual_seed(0)
    network = build_model({"input": [6], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 3}]}, loss="mse")
    return export_onnx(network.eval()), torch.randn(4, 6, generator=torch.Generator().manual_seed(1))


def test_with_fast_paths_off_the_backend_runs_the_plain_session_run(monkeypatch: pytest.MonkeyPatch) -> None:
    data, x = _small_graph()
    fast = OnnxBackend(data, threads=1)
    assert fast._bound is not None and fast.call == "bound-buffers"  # on by default
    calls = []
    monkeypatch.setattr(onnx_bound.BoundBuffers, "run", lambda self, x: calls.append(x))
    off = "off (MODELYARD_FAST_PATHS=0 or fast_paths.set_enabled(False))"
    with fast_paths.disabled():
        backend = OnnxBackend(data, threads=1)
        assert fast_paths.report(["onnx_bound_buffers"]) == {"onnx_bound_buffers": off}
    assert fast_paths.enabled()  # restored after the block
    monkeypatch.setenv(fast_paths.ENV, "0")
    from_env = OnnxBackend(data, threads=1)
    assert fast_paths.report(["onnx_bound_buffers"]) == {"onnx_bound_buffers": off}
    for plain in (backend, from_env):
        assert plain._bound is None and plain.call == f"session.run (fast path {off})"
        assert torch.equal(plain.predict_tensor(x), _plain(data, x))
    assert calls == []  # the bound-buffer call never ran


def test_an_untested_onnxruntime_version_takes_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    data, x = _small_graph()
    monkeypatch.setattr(fast_paths, "_installed", lambda package: "1.99.0")
    backend = OnnxBackend(data, threads=1)
    assert backend._bound is None
    assert torch.equal(backend.predict_tensor(x), _plain(data, x))
    assert fast_paths.report(["onnx_bound_buffers"]) == {
        "onnx_bound_buffers": "off (onnxruntime 1.99.0 is outside the tested range >=1.18,<1.33)"
    }
