"""Size, parameters, latency and accuracy of a model, measured the same way for parent and child.

Latency is the median of many timed calls at batch 1 and 32 on real test samples, with
one intra-op thread for every engine (a fixed thread count makes numbers comparable
across runs on a shared machine), alternating the models round by round so that a
burst of load elsewhere hits them alike. Two engines are timed:

- ``torch``: ``Predictor.predict_tensor`` (what ``modelyard.load`` runs; the torch serving
  backend adds a zero-copy ``.numpy()``), including the output softmax.
- ``onnxruntime``: ``OnnxBackend.predict_array`` on the model's ONNX graph (what the onnx
  serving backend runs: features in, the numpy outputs the server encodes out). For an
  int8 version that is its stored int8 graph (for dynamically quantized dense layers,
  ONNX Runtime's quantization of the parent's fp32 graph).

``served`` repeats the numbers of the engine that the serving backend's ``auto`` choice
picked for the model (``served_by``), so a speed-up "as served" is what users get.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["BATCHES", "ENGINES", "Measured", "one_thread", "onnx_accuracy", "time_calls"]

BATCHES = (1, 32)
ENGINES = {"torch": "torch", "onnx": "onnxruntime"}  # serving backend name → engine name in the table


@dataclass
class Measured:
    """One row of the before/after table."""

    label: str
    ref: str | None
    weights_bytes: int | None
    onnx_bytes: int | None
    parameters: int
    nonzero: int | None
    latency_ms: dict[str, dict[int, float]] = field(default_factory=dict)  # engine → batch → ms
    accuracy: float | None = None
    onnx_accuracy: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    served_by: str | None = None  # the engine `auto` serves this model with
    served_reason: str | None = None

    def serve(self, engine: str, reason: str | None = None) -> None:
        """Record that ``auto`` serves the model with ``engine``; its latencies become the ``served`` ones."""
        self.served_by, self.served_reason = engine, reason
        if engine in self.latency_ms:
            self.latency_ms["served"] = dict(self.latency_ms[engine])

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ref": self.ref,
            "weights_bytes": self.weights_bytes,
            "onnx_bytes": self.onnx_bytes,
            "parameters": self.parameters,
            "nonzero": self.nonzero,
            "latency_ms": {e: {str(b): round(v, 4) for b, v in per.items()} for e, per in self.latency_ms.items()},
            "accuracy": self.accuracy,
            "onnx_accuracy": self.onnx_accuracy,
            "served_by": self.served_by,
            "served_reason": self.served_reason,
        }


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch (and ONNX Runtime sessions made meanwhile for serving) on one intra-op thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_calls(
    calls: dict[str, Callable[[], Any]], *, rounds: int = 20, per_round: int = 25, warmup: int = 20
) -> dict[str, float]:
    """Median milliseconds per call for each named call, alternating them round by round."""
    with one_thread():
        for call in calls.values():
            for _ in range(warmup):
                call()
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) * 1000.0 for name, values in samples.items()}


def onnx_accuracy(
    predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> float:
    """Top-1 accuracy of a backend's ``predict_tensor`` on class-index targets."""
    hits = 0
    for start in range(0, len(x), batch_size):
        out = predict(x[start : start + batch_size])
        hits += int((out.argmax(dim=1) == y[start : start + batch_size]).sum())
    return hits / max(len(x), 1)
