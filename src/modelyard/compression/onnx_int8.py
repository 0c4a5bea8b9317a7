"""ONNX graphs for timing, serving and export: the fp32 graph of a float network, an int8 graph for a quantized one.

torch exports statically quantized (conv) networks to int8 ONNX itself (QuantizeLinear /
DequantizeLinear around each operator, which ONNX Runtime fuses into int8 kernels); its
dynamically quantized dense layers have no ONNX form, so their int8 graph is made by ONNX
Runtime's own dynamic quantization (``MatMulInteger`` + ``DynamicQuantizeLinear``, fused by
ONNX Runtime into ``DynamicQuantizeMatMul``) of the float parent's checked fp32 graph: int8
weights, activations quantized per batch, as torch does. Either int8 graph rounds differently
from torch's int8 kernels, so it is judged against the torch int8 model by predicted class on
the parent's test split (``check_int8_graph``), and the largest probability difference is
recorded beside it.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from modelyard.compression.loading import graph_record
from modelyard.compression.onnx_graph import cut_pad_id, export_onnx
from modelyard.errors import ExportError, ModelyardError, optional_dependency
from modelyard.nn.masking import cut_padding
from modelyard.serving.onnx_backend import OnnxBackend

__all__ = [
    "INT8_AGREEMENT",
    "check_int8_graph",
    "checked_int8_graph",
    "dynamic_int8_graph",
    "float_graph",
    "static_int8_graph",
]

log = logging.getLogger(__name__)

# Two int8 schemes (torch: 7-bit activations; ONNX Runtime: 8-bit) round differently, so the
# int8 graph is held to the same predicted class on nearly every test sample, not to 1e-4.
# Measured: 99.5% on Fashion-MNIST (10,000 samples), 98.1% on the 360 digits test samples;
# each int8 model agrees with the fp32 parent about as often (99.5-99.7%, 98.6%).
INT8_AGREEMENT = 0.97
_MADE_BY = {
    "dynamic": "onnxruntime.quantization.quantize_dynamic (int8 weights per tensor) of the parent's checked fp32 ONNX graph",
    "static": "torch.onnx export of the statically quantized network (QuantizeLinear/DequantizeLinear around each operator)",
}


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization advises 'pre-processing' through the root logger on every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def float_graph(network: Any) -> bytes:
    """The network's ONNX graph (with its output activation), checked against torch."""
    return export_onnx(network)


def static_int8_graph(network: Any) -> bytes:
    """torch's own ONNX export of a statically quantized network (a QDQ graph: int8 tensors between operators).

    Not held to 1e-4: ONNX Runtime's int8 kernels round differently from torch's (up to
    ~0.02 in probabilities), so callers compare predicted classes instead.
    """
    return export_onnx(network, atol=1.0, rtol=0.0)  # shapes checked; values compared by class elsewhere


def dynamic_int8_graph(float_onnx: bytes) -> bytes:
    """ONNX Runtime's dynamic int8 quantization (per-tensor int8 weights) of an fp32 graph."""
    with optional_dependency("serve", "int8 ONNX quantization"):
        from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="modelyard-int8-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(float_onnx)
        try:
            with _quiet_root_logger():
                quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        except Exception as exc:  # onnxruntime raises its own error types
            raise ExportError(f"ONNX Runtime cannot quantize the graph to int8: {type(exc).__name__}: {exc}") from None
        return target.read_bytes()


@torch.inference_mode()
def check_int8_graph(graph: bytes, network: Any, x: torch.Tensor, *, batch_size: int = 1024) -> dict[str, Any]:
    """The int8 graph (ONNX Runtime) against the torch int8 ``network`` on samples ``x``.

    Both run the same batches (dynamic int8 quantizes each batch's activations with its own
    range); token ids are cut to each batch's longest real sequence for both, as they are served.
    Returns class agreement and the largest and mean probability difference; raises
    ExportError below ``INT8_AGREEMENT``.
    """
    pad_id = cut_pad_id(network)
    backend = OnnxBackend(graph, threads=1, pad_id=pad_id)
    same, worst, total, values = 0, 0.0, 0.0, 0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if pad_id is not None:
            batch = cut_padding(batch, pad_id)
        got, want = backend.predict_tensor(batch), network.probabilities(network(batch)).float()
        if got.shape != want.shape:
            raise ExportError(
                f"The int8 ONNX graph disagrees with torch: expected outputs of shape {list(want.shape)}, "
                f"received {list(got.shape)}"
            )
        diff = (got - want).abs()
        worst, total, values = max(worst, float(diff.max())), total + float(diff.sum()), values + diff.numel()
        if got.shape[1] > 1:
            same += int((got.argmax(1) == want.argmax(1)).sum())
        else:  # one sigmoid output: the class is p >= 0.5
            same += int(((got[:, 0] >= 0.5) == (want[:, 0] >= 0.5)).sum())
    n = len(x)
    check = {
        "against": "torch int8 (this version)",
        "samples": n,
        "class_agreement": same / max(n, 1),
        "min_class_agreement": INT8_AGREEMENT,
        "max_abs_diff": worst,
        "mean_abs_diff": total / max(values, 1),
    }
    if check["class_agreement"] < INT8_AGREEMENT:
        raise ExportError(
            f"The int8 ONNX graph disagrees with the torch int8 model: expected the same class on at least "
            f"{INT8_AGREEMENT:.0%} of {n} test samples, received {check['class_agreement']:.2%}"
        )
    return check


def checked_int8_graph(
    network: Any, mode: str, parent_graph: bytes | None, x: torch.Tensor, split: str = "test"
) -> tuple[bytes | None, dict[str, Any]]:
    """The int8 version's ONNX Runtime graph and its ``compression.json`` record.

    A graph that cannot be made or fails its check is not stored: the record says why, and the
    version serves with torch (logged once, here).
    """
    try:
        if mode == "dynamic":
            if parent_graph is None:
                raise ExportError("the parent has no fp32 ONNX graph to quantize")
            graph = dynamic_int8_graph(parent_graph)
        else:
            graph = static_int8_graph(network)
        check = check_int8_graph(graph, network, x)
    except ModelyardError as exc:  # MissingDependencyError too: onnx/onnxruntime not installed
        log.warning("no ONNX Runtime int8 graph stored; the int8 version serves with torch: %s", exc)
        return None, {"file": None, "reason": str(exc)}
    return graph, graph_record(graph, made_by=_MADE_BY[mode], check={"split": split, **check})
