"""Which engine runs a model's forward pass: torch, ONNX Runtime, or the faster ("auto").

"auto" measures both on this machine at startup, on the batch sizes this deployment will
see (1, max_batch_size/4 and max_batch_size), alternating them round by round for about
a second, and keeps ONNX Runtime only when the geometric mean of its median time per
batch size, relative to torch's, is below 1. What is timed is the call the server makes,
``predict_array`` (features in, numpy outputs out, ready to encode). If ONNX export or its
numerical check fails, torch serves and the reason is recorded. The choice and timings show
in ``GET /v1/models``.

An int8 version is never exported: its ONNX Runtime candidate is the int8 graph stored and
checked (class agreement with the torch int8 model on the parent's test split) when it was
compressed, and ``auto`` times torch int8 against ONNX Runtime int8. The graph used and its
check are listed as ``onnx_graph`` and ``onnx_check``.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from typing import Any, Literal, Protocol

import numpy as np
import torch

from modelyard.errors import ModelyardError

__all__ = ["Backend", "TorchBackend", "BackendChoice", "select_backend"]

log = logging.getLogger(__name__)

BackendName = Literal["auto", "torch", "onnx"]


class Backend(Protocol):
    """Preprocessed features → outputs; ``predict_array`` (numpy) is what the server calls."""

    name: str

    def predict_tensor(self, features: torch.Tensor) -> torch.Tensor: ...

    def predict_array(self, features: torch.Tensor) -> np.ndarray: ...


class TorchBackend:
    """The Predictor's own forward pass (inference mode, its device)."""

    name = "torch"

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor

    def predict_tensor(self, features: torch.Tensor) -> torch.Tensor:
        return self._predictor.predict_tensor(features)

    def predict_array(self, features: torch.Tensor) -> np.ndarray:
        return self._predictor.predict_tensor(features).numpy()


class BackendChoice:
    """The backend in use and why: ``info`` goes into the model listing."""

    def __init__(self, backend: Backend, info: dict[str, Any]) -> None:
        self.backend = backend
        self.info = info


# Token ids for timing a text model: both backends cut a batch to its longest real sequence,
# so all-pad ids would time one token; 16 is a short query (CLINC150's test queries: 12 word
# pieces with [CLS] and [SEP] on average for MiniLM's tokenizer).
AUTO_TOKENS = 16


def _example(predictor: Any, batch: int) -> torch.Tensor:
    network = predictor.network
    if network.input_dtype == torch.int64:
        if getattr(network, "any_length", False):
            from modelyard.compression.onnx_graph import example_input

            ids = example_input(network, batch, seed=batch, length=min(AUTO_TOKENS, network.input_shape[0]))
            pad = torch.full((batch, network.input_shape[0] - ids.shape[1]), network.pad_id, dtype=torch.int64)
            return torch.cat([ids, pad], dim=1)
        return torch.zeros((batch, *network.input_shape), dtype=torch.int64)
    return torch.rand((batch, *network.input_shape), generator=torch.Generator().manual_seed(batch))


def _time_backends(
    backends: list[Backend], inputs: dict[int, torch.Tensor], budget_s: float
) -> dict[str, dict[int, float]]:
    """Median seconds per call, per backend and batch size; rounds alternate the backends."""
    samples: dict[str, dict[int, list[float]]] = {b.name: {n: [] for n in inputs} for b in backends}
    for backend in backends:  # first calls allocate and plan: not part of the timing
        for x in inputs.values():
            backend.predict_array(x)
    start = time.perf_counter()
    rounds = 0
    while rounds < 3 or (rounds < 50 and time.perf_counter() - start < budget_s):
        for backend in backends:
            for n, x in inputs.items():
                t0 = time.perf_counter()
                backend.predict_array(x)
                samples[backend.name][n].append(time.perf_counter() - t0)
        rounds += 1
    return {name: {n: statistics.median(v) for n, v in per.items()} for name, per in samples.items()}


def select_backend(
    predictor: Any,
    choice: BackendName = "auto",
    *,
    max_batch_size: int = 64,
    budget_s: float = 1.0,
    cache_onnx: bool = True,
    threads: int | None = None,
    onnx_backend: Any = None,
) -> BackendChoice:
    """Build the requested backend; for "auto", time torch and ONNX Runtime and keep the faster.

    ``threads``: ONNX Runtime's intra-op threads (default: torch's). ``onnx_backend``: an
    ``OnnxBackend`` built already (compress measures a version before registering it).
    """
    torch_backend = TorchBackend(predictor)
    if choice == "torch":
        return BackendChoice(torch_backend, {"name": "torch", "requested": choice})
    from modelyard.serving.onnx_backend import OnnxBackend

    try:
        if onnx_backend is None:
            onnx_backend = OnnxBackend.from_predictor(predictor, cache=cache_onnx, threads=threads)
    except ModelyardError as exc:  # MissingDependencyError too: onnxruntime not installed
        if choice == "onnx":
            raise
        log.warning("%s: ONNX backend unavailable (%s); serving with torch", predictor.ref, exc)
        return BackendChoice(
            torch_backend, {"name": "torch", "requested": choice, "reason": f"onnx unavailable: {exc}"}
        )
    info: dict[str, Any] = {
        "name": "onnx",
        "requested": choice,
        "onnx_max_abs_diff": onnx_backend.max_abs_diff,
        "onnx_graph": onnx_backend.graph,
        "onnx_check": onnx_backend.check,
        "onnx_call": onnx_backend.call,  # bound buffers, or session.run and why (modelyard.fast_paths)
    }
    if choice == "onnx":
        return BackendChoice(onnx_backend, info)

    sizes = sorted({1, max(1, max_batch_size // 4), max_batch_size})
    inputs = {n: _example(predictor, n) for n in sizes}
    timings = _time_backends([torch_backend, onnx_backend], inputs, budget_s)
    ratios = [timings["onnx"][n] / max(timings["torch"][n], 1e-9) for n in sizes]
    geo = math.exp(sum(math.log(max(r, 1e-9)) for r in ratios) / len(ratios))
    winner: Backend = onnx_backend if geo < 1.0 else torch_backend
    info.update(
        name=winner.name,
        reason=f"auto: onnx/torch time ratio {geo:.2f} (geometric mean over batch sizes {sizes})",
        timings_ms={name: {str(n): round(t * 1000, 4) for n, t in per.items()} for name, per in timings.items()},
    )
    log.info("%s: serving with %s (%s)", predictor.ref, winner.name, info["reason"])
    return BackendChoice(winner, info)
