"""ONNX graphs for timing and export: the fp32 graph of a float network, an int8 graph for a quantized one.

torch exports statically quantized (conv) networks to QLinear* ONNX operators itself; its
dynamically quantized dense layers have no ONNX form, so their int8 graph is made by ONNX
Runtime's own dynamic quantization (``MatMulInteger`` + ``DynamicQuantizeLinear``) of the
float parent's graph: int8 weights, activations quantized per batch, as torch does. Either
int8 graph rounds differently from torch's int8 kernels, so it is judged by predicted class.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelyard.onnx_export import ExportError, export_onnx

__all__ = ["bound_runner", "dynamic_int8_graph", "float_graph", "static_int8_graph"]


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
    """torch's own ONNX export of a statically quantized network (QuantizeLinear, QLinearConv, ...).

    Not held to 1e-4: ONNX Runtime's int8 kernels round differently from torch's (up to
    ~0.02 in probabilities), so callers compare predicted classes instead.
    """
    return export_onnx(network, atol=1.0, rtol=0.0)  # shapes checked; values compared by class elsewhere


def dynamic_int8_graph(float_onnx: bytes) -> bytes:
    """ONNX Runtime's dynamic int8 quantization (per-tensor int8 weights) of an fp32 graph."""
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


def bound_runner(data: bytes, x: Any) -> Callable[[], Any]:
    """One ONNX Runtime forward pass of ``x`` with IO binding (input and output bound once).

    Timing through IO binding leaves out the per-call cost of ``session.run`` converting
    its arguments (about 4-6 µs here), which otherwise hides most of the int8 gain for a
    model that takes 10-20 µs at batch 1. Parent and child are timed the same way.
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()  # the serving backend's settings: one thread, no spinning
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    array = np.ascontiguousarray(x.detach().cpu().numpy())
    binding = session.io_binding()
    binding.bind_cpu_input("input", array)
    binding.bind_output("output", "cpu")

    def run() -> Any:
        session.run_with_iobinding(binding)
        return array  # keeps the bound input alive as long as the runner

    return run
