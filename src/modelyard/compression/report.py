"""The before/after table: parent and compressed model measured the same way, in one process.

One line per model and engine: ``torch`` (weights file, ``Predictor.predict_tensor``) and
``onnxruntime`` (ONNX graph, ``OnnxBackend.predict_array``: the onnx serving backend's call),
each with its size, median latency at batch 1 and 32 and test accuracy. The ``served (auto)``
column marks the engine that the serving backend's ``auto`` choice picks for the model,
decided exactly as ``modelyard serve`` decides it, so the "as served" speed-up is what users get.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import torch

from modelyard.compression.measure import (
    BATCHES,
    ENGINES,
    TIMING_BUDGET_S,
    Measured,
    one_thread,
    onnx_accuracy,
    time_calls,
)
from modelyard.compression.onnx_graph import cut_pad_id
from modelyard.compression.onnx_int8 import float_graph
from modelyard.compression.quantize import is_quantized, stored_parameter_count
from modelyard.errors import ModelyardError
from modelyard.nn import Network
from modelyard.serving.backends import BackendChoice, TorchBackend, select_backend
from modelyard.serving.config import ServeConfig
from modelyard.serving.onnx_backend import OnnxBackend
from modelyard.store.records import WEIGHTS_FILE

__all__ = [
    "markdown_table",
    "measure_export",
    "measure_pair",
    "onnx_graph",
    "rich_table",
    "served_summary",
    "speedups",
    "tensor_bytes",
]

log = logging.getLogger(__name__)


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    """Size of ``state`` as a safetensors file (exactly what registration writes)."""
    from safetensors.torch import save

    return len(save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt"}))


def _counts(network: Network) -> tuple[int, int | None]:
    """(stored parameters, nonzero ones or None when int8 hides them)."""
    if is_quantized(network):
        return stored_parameter_count(network), None
    params = list(network.parameters())
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def onnx_graph(network: Network) -> bytes | None:
    """A float network's checked fp32 ONNX graph, or None if it has none (logged)."""
    try:
        return float_graph(network)
    except ModelyardError as exc:  # MissingDependencyError too: onnx/onnxruntime not installed
        log.warning("no ONNX Runtime timing for this model: %s", exc)
        return None


def _auto(predictor: Any, onnx: OnnxBackend | None, rounds: int) -> BackendChoice:
    """The serving backend's ``auto`` choice for this model (default batch limit, one thread)."""
    if onnx is None:
        return BackendChoice(TorchBackend(predictor), {"name": "torch", "requested": "auto", "reason": "no ONNX graph"})
    return select_backend(
        predictor,
        "auto",
        max_batch_size=ServeConfig().max_batch_size,
        cache_onnx=False,
        budget_s=min(1.0, 0.05 * rounds),
        threads=1,
        onnx_backend=onnx,
    )


def measure_pair(
    parent: Any,
    child: Network,
    child_spec: Any,
    child_state: dict[str, torch.Tensor],
    *,
    test: Any,
    parent_accuracy: float | None,
    child_accuracy: float | None,
    child_label: str,
    parent_graph: bytes | None,
    child_graph: bytes | None,
    child_check: dict[str, Any] | None = None,
    rounds: int = 20,
) -> tuple[Measured, Measured]:
    """Rows for parent and child, timed alternately, each marked with the engine ``auto`` serves it with."""
    from modelyard.compression.loading import INT8_ONNX_FILE

    rows: list[Measured] = []
    choices: list[BackendChoice] = []
    calls: dict[str, Any] = {}
    samples = {b: test.x[:b].contiguous() for b in BATCHES}
    with one_thread():
        for label, ref, network, state, graph, check, acc in (
            ("parent", parent.ref, parent.network, None, parent_graph, None, parent_accuracy),
            (child_label, None, child, child_state, child_graph, child_check, child_accuracy),
        ):
            params, nonzero = _counts(network)
            weights = (parent.version.path / WEIGHTS_FILE).stat().st_size if state is None else tensor_bytes(state)
            row = Measured(label, ref, weights, len(graph) if graph else None, params, nonzero, accuracy=acc)
            rows.append(row)
            predictor = _with_network(parent, network)
            onnx = None
            if graph is not None:
                int8 = is_quantized(network)
                onnx = OnnxBackend(
                    graph,
                    threads=1,
                    check=check,
                    graph=INT8_ONNX_FILE if int8 else "model.onnx",
                    pad_id=cut_pad_id(network),
                )
            choices.append(_auto(predictor, onnx, rounds))
            for b, x in samples.items():
                calls[f"{label}|torch|{b}"] = lambda p=predictor, x=x: p.predict_tensor(x)
                if onnx is not None:
                    calls[f"{label}|onnxruntime|{b}"] = lambda o=onnx, x=x: o.predict_array(x)
            if onnx is not None and parent.task == "classification":
                row.onnx_accuracy = onnx_accuracy(onnx.predict_tensor, test.x, test.y, pad_id=onnx.pad_id)
    timings = time_calls(calls, rounds=rounds, budget_s=TIMING_BUDGET_S)
    for row, choice in zip(rows, choices):
        for key, ms in timings.items():
            label, engine, batch = key.split("|")
            if label == row.label:
                row.latency_ms.setdefault(engine, {})[int(batch)] = ms
        row.serve(ENGINES[choice.backend.name], choice.info.get("reason"))
    return rows[0], rows[1]


def measure_export(model: Any, graph: bytes, test: Any, *, rounds: int = 20) -> list[Measured]:
    """Rows for an export: the model under torch, and its ONNX graph under ONNX Runtime."""
    params, nonzero = _counts(model.network)
    weights = (model.version.path / WEIGHTS_FILE).stat().st_size
    torch_row = Measured("torch", model.ref, weights, None, params, nonzero)
    onnx_row = Measured("onnx", None, None, len(graph), params, nonzero)
    backend = OnnxBackend(graph, threads=1, pad_id=cut_pad_id(model.network))
    if model.task == "classification":
        pad_id = cut_pad_id(model.network)
        torch_row.accuracy = onnx_accuracy(model.predict_tensor, test.x, test.y, pad_id=pad_id)
        onnx_row.onnx_accuracy = onnx_accuracy(backend.predict_tensor, test.x, test.y, pad_id=pad_id)
    calls: dict[str, Any] = {}
    for b in BATCHES:
        x = test.x[:b].contiguous()
        calls[f"torch|torch|{b}"] = lambda x=x: model.predict_tensor(x)
        calls[f"onnx|onnxruntime|{b}"] = lambda x=x: backend.predict_array(x)
    for key, ms in time_calls(calls, rounds=rounds, budget_s=TIMING_BUDGET_S).items():
        label, engine, batch = key.split("|")
        (torch_row if label == "torch" else onnx_row).latency_ms.setdefault(engine, {})[int(batch)] = ms
    return [torch_row, onnx_row]


def _with_network(parent: Any, network: Network) -> Any:
    """A Predictor like ``parent`` but running ``network`` (same preprocessing and metadata)."""
    from dataclasses import replace

    return replace(parent, network=network)


def speedups(before: Measured, after: Measured) -> dict[str, float]:
    """parent time / child time per engine (and as served) and batch (> 1: the child is faster)."""
    out: dict[str, float] = {}
    for engine, per in after.latency_ms.items():
        for batch, ms in per.items():
            base = before.latency_ms.get(engine, {}).get(batch)
            if base and ms:
                out[f"{engine}_b{batch}"] = base / ms
    return out


def served_summary(before: Measured, after: Measured) -> str:
    """One line: which engine serves each model and the speed-up users get."""
    ratios = speedups(before, after)
    per_batch = ", ".join(f"batch {b} {ratios[f'served_b{b}']:.2f}x" for b in BATCHES if f"served_b{b}" in ratios)
    return f"as served (auto): parent on {before.served_by}, {after.label} on {after.served_by}" + (
        f": {per_batch}" if per_batch else ""
    )


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _fmt_ms(row: Measured, engine: str, batch: int) -> str:
    value = row.latency_ms.get(engine, {}).get(batch)
    return "-" if value is None else f"{value:.3f}"


def _fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


HEADERS = ["model", "runtime", "served (auto)", "size", "params", "nonzero", "b1 ms", "b32 ms", "accuracy"]


def _lines(row: Measured) -> list[list[str]]:
    """One line per engine the row has numbers for (the first one names the model)."""
    name = f"{row.label} ({row.ref})" if row.ref else row.label
    engines = [
        ("torch", f"{_fmt_bytes(row.weights_bytes)} safetensors" if row.weights_bytes else "-", row.accuracy),
        ("onnxruntime", f"{_fmt_bytes(row.onnx_bytes)} onnx" if row.onnx_bytes else "-", row.onnx_accuracy),
    ]
    lines = []
    for engine, size, accuracy in engines:
        if engine not in row.latency_ms and size == "-" and (accuracy is None or engine != "torch"):
            continue
        served = "yes" if row.served_by == engine else ""
        lines.append(
            [
                name if not lines else "",
                engine,
                served,
                size,
                f"{row.parameters:,}",
                "-" if row.nonzero is None else f"{row.nonzero:,}",
                _fmt_ms(row, engine, 1),
                _fmt_ms(row, engine, 32),
                _fmt_acc(accuracy),
            ]
        )
    return lines


def markdown_table(rows: list[Measured]) -> str:
    """The table as GitHub markdown (docs, `--json` users)."""
    out = io.StringIO()
    out.write("| " + " | ".join(HEADERS) + " |\n")
    out.write("|" + "|".join("---" for _ in HEADERS) + "|\n")
    for row in rows:
        for line in _lines(row):
            out.write("| " + " | ".join(line) + " |\n")
    return out.getvalue()


def rich_table(rows: list[Measured], title: str) -> Any:
    """The table for the terminal."""
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    for i, head in enumerate(HEADERS):
        table.add_column(head, justify="left" if i < 3 else "right")
    for row in rows:
        for i, line in enumerate(_lines(row)):
            table.add_row(*line, end_section=i == len(_lines(row)) - 1)
    return table
