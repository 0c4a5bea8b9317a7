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

A call that takes long (a transformer at batch 32) is timed fewer times per round, so one
table stays within ``TIMING_BUDGET_S`` seconds of timing (``time_calls``' ``budget_s``); every
call is still timed at least once per round.

Accuracy on token ids runs the samples sorted by their number of real tokens, so each batch is
cut to a length near its own (``modelyard.nn.masking.cut_padding``, which both engines apply);
top-1 accuracy does not depend on the order.

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

__all__ = ["BATCHES", "ENGINES", "TIMING_BUDGET_S", "Measured", "one_thread", "onnx_accuracy", "time_calls"]

BATCHES = (1, 32)
TIMING_BUDGET_S = 60.0  # per table; the Fashion-MNIST MLP's ~1 s of timing is far below it
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
    calls: dict[str, Callable[[], Any]],
    *,
    rounds: int = 20,
    per_round: int = 25,
    warmup: int = 20,
    budget_s: float | None = None,
) -> dict[str, float]:
    """Median milliseconds per call for each named call, alternating them round by round.

    With ``budget_s``, warm-up stops after 1 s per call, and a call whose warm-up shows that
    ``per_round`` calls would overrun its share of the budget is timed fewer times per round
    (at least once)."""
    with one_thread():
        counts = dict.fromkeys(calls, per_round)
        for name, call in calls.items():
            t0, done = time.perf_counter(), 0
            while done < warmup and (budget_s is None or done < 2 or time.perf_counter() - t0 < 1.0):
                call()
                done += 1
            if budget_s is not None:
                each = (time.perf_counter() - t0) / done
                share = budget_s / (len(calls) * rounds)
                counts[name] = max(1, min(per_round, int(share / max(each, 1e-9))))
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                for _ in range(counts[name]):
                    t0 = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) * 1000.0 for name, values in samples.items()}


def onnx_accuracy(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1024,
    pad_id: int | None = None,
) -> float:
    """Top-1 accuracy of a backend's ``predict_tensor`` on class-index targets (``pad_id``: token
    ids, run shortest first)."""
    if pad_id is not None and x.ndim == 2:
        order = torch.argsort((x != pad_id).sum(dim=1), stable=True)
        x, y = x[order], y[order]
    hits = 0
    for start in range(0, len(x), batch_size):
        out = predict(x[start : start + batch_size])
        hits += int((out.argmax(dim=1) == y[start : start + batch_size]).sum())
    return hits / max(len(x), 1)
