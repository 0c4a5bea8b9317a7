"""The before/after table: parent and compressed model measured the same way, in one process.

Columns: weights file size, ONNX graph size, parameters (and how many are nonzero), median
latency at batch 1 and 32 under torch and under ONNX Runtime, and test accuracy (torch and
ONNX Runtime). Every number says which engine produced it.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import torch

from modelyard.compression.measure import BATCHES, Measured, onnx_accuracy, time_calls
from modelyard.compression.onnx_int8 import (
    bound_runner,
    dynamic_int8_graph,
    float_graph,
    static_int8_graph,
)
from modelyard.compression.quantize import is_quantized
from modelyard.errors import ModelyardError
from modelyard.nn import Network, build_model
from modelyard.onnx_export import OnnxBackend
from modelyard.store.records import WEIGHTS_FILE

__all__ = [
    "markdown_table",
    "measure_export",
    "measure_pair",
    "rich_table",
    "speedups",
    "tensor_bytes",
]

log = logging.getLogger(__name__)


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    """Size of ``state`` as a safetensors file (exactly what registration writes)."""
    from safetensors.torch import save

    return len(save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt"}))


def _counts(network: Network, spec: Any) -> tuple[int, int | None]:
    """(parameters of the float architecture, nonzero ones or None when int8 hides them)."""
    if is_quantized(network):
        return sum(p.numel() for p in build_model(spec.model, loss=spec.train.loss.type).parameters()), None
    params = list(network.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def _onnx(network: Network, parent_graph: bytes | None, mode: str | None) -> bytes | None:
    """The graph ONNX Runtime runs for this network, or None if it has none (logged)."""
    try:
        if mode == "dynamic":
            return dynamic_int8_graph(parent_graph) if parent_graph is not None else None
        if mode == "static":
            return static_int8_graph(network)
        return float_graph(network)
    except (ModelyardError, ImportError) as exc:  # ImportError: onnx/onnxruntime not installed
        log.warning("no ONNX Runtime timing for this model: %s", exc)
        return None


def measure_pair(parent: Any, child: Network, child_spec: Any, child_state: dict[str, torch.Tensor], *,
                 test: Any, parent_accuracy: float | None, child_accuracy: float | None, child_label: str,
                 quant_mode: str | None = None, rounds: int = 20) -> tuple[Measured, Measured, dict[str, bytes]]:
    """Rows for parent and child, timed alternately; also the ONNX graphs made on the way."""
    parent_graph = _onnx(parent.network, None, None)
    child_graph = _onnx(child, parent_graph, quant_mode)
    rows: list[Measured] = []
    calls: dict[str, Any] = {}
    samples = {b: test.x[:b].contiguous() for b in BATCHES}
    for label, ref, network, spec, state, graph, acc in (
        ("parent", parent.ref, parent.network, parent.spec, None, parent_graph, parent_accuracy),
        (child_label, None, child, child_spec, child_state, child_graph, child_accuracy),
    ):
        params, nonzero = _counts(network, spec)
        weights = (parent.version.path / WEIGHTS_FILE).stat().st_size if state is None else tensor_bytes(state)
        row = Measured(label, ref, weights, len(graph) if graph else None, params, nonzero, accuracy=acc)
        rows.append(row)
        predictor = _with_network(parent, network)
        backend = OnnxBackend(graph, threads=1) if graph else None
        for b, x in samples.items():
            calls[f"{label}|torch|{b}"] = (lambda p=predictor, x=x: p.predict_tensor(x))
            if graph is not None:
                calls[f"{label}|onnxruntime|{b}"] = bound_runner(graph, x)
        if backend is not None and parent.task == "classification":
            row.onnx_accuracy = onnx_accuracy(backend.predict_tensor, test.x, test.y)
    timings = time_calls(calls, rounds=rounds)
    for row in rows:
        for key, ms in timings.items():
            label, engine, batch = key.split("|")
            if label == row.label:
                row.latency_ms.setdefault(engine, {})[int(batch)] = ms
    graphs = {"parent": parent_graph, "child": child_graph}
    return rows[0], rows[1], {k: v for k, v in graphs.items() if v is not None}


def measure_export(model: Any, graph: bytes, test: Any, *, rounds: int = 20) -> list[Measured]:
    """Rows for an export: the model under torch, and its ONNX graph under ONNX Runtime."""
    params, nonzero = _counts(model.network, model.spec)
    weights = (model.version.path / WEIGHTS_FILE).stat().st_size
    torch_row = Measured("torch", model.ref, weights, None, params, nonzero)
    onnx_row = Measured("onnx", None, None, len(graph), params, nonzero)
    backend = OnnxBackend(graph, threads=1)
    if model.task == "classification":
        torch_row.accuracy = onnx_accuracy(model.predict_tensor, test.x, test.y)
        onnx_row.onnx_accuracy = onnx_accuracy(backend.predict_tensor, test.x, test.y)
    calls: dict[str, Any] = {}
    for b in BATCHES:
        x = test.x[:b].contiguous()
        calls[f"torch|torch|{b}"] = (lambda x=x: model.predict_tensor(x))
        calls[f"onnx|onnxruntime|{b}"] = bound_runner(graph, x)
    for key, ms in time_calls(calls, rounds=rounds).items():
        label, engine, batch = key.split("|")
        (torch_row if label == "torch" else onnx_row).latency_ms.setdefault(engine, {})[int(batch)] = ms
    return [torch_row, onnx_row]


def _with_network(parent: Any, network: Network) -> Any:
    """A Predictor like ``parent`` but running ``network`` (same preprocessing and metadata)."""
    from dataclasses import replace

    return replace(parent, network=network)


def speedups(before: Measured, after: Measured) -> dict[str, float]:
    """parent time / child time per engine and batch (> 1: the child is faster)."""
    out: dict[str, float] = {}
    for engine, per in after.latency_ms.items():
        for batch, ms in per.items():
            base = before.latency_ms.get(engine, {}).get(batch)
            if base and ms:
                out[f"{engine}_b{batch}"] = base / ms
    return out


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _fmt_ms(row: Measured, engine: str, batch: int) -> str:
    value = row.latency_ms.get(engine, {}).get(batch)
    return "-" if value is None else f"{value:.3f}"


def _fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


HEADERS = ["model", "weights", "onnx", "params", "nonzero", "torch b1 ms", "torch b32 ms", "ort b1 ms", "ort b32 ms",
           "acc (torch)", "acc (ort)"]


def _cells(row: Measured) -> list[str]:
    name = f"{row.label} ({row.ref})" if row.ref else row.label
    return [name, _fmt_bytes(row.weights_bytes), _fmt_bytes(row.onnx_bytes), f"{row.parameters:,}",
            "-" if row.nonzero is None else f"{row.nonzero:,}",
            _fmt_ms(row, "torch", 1), _fmt_ms(row, "torch", 32), _fmt_ms(row, "onnxruntime", 1),
            _fmt_ms(row, "onnxruntime", 32), _fmt_acc(row.accuracy), _fmt_acc(row.onnx_accuracy)]


def markdown_table(rows: list[Measured]) -> str:
    """The table as GitHub markdown (docs, `--json` users)."""
    out = io.StringIO()
    out.write("| " + " | ".join(HEADERS) + " |\n")
    out.write("|" + "|".join("---" for _ in HEADERS) + "|\n")
    for row in rows:
        out.write("| " + " | ".join(_cells(row)) + " |\n")
    return out.getvalue()


def rich_table(rows: list[Measured], title: str) -> Any:
    """The table for the terminal."""
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    for i, head in enumerate(HEADERS):
        table.add_column(head, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*_cells(row))
    return table
