"""ONNX export of a registered model's network, checked against torch.

The exported graph is the network *plus* its output activation (``Network.probabilities``),
so it maps preprocessed features to exactly what ``Predictor.predict_tensor`` returns:
probabilities for classifiers, values for regression. The batch axis is dynamic. A network on
token ids that pools its padded tokens (``Network.any_length``: a transformer, the pretrained
encoder, a bag of embeddings ending in ``token_pool``) also gets a dynamic token axis
(``tokens``): the padding mask ``ids != pad_id`` is computed inside the graph from the ids, so
the graph takes one input, and a batch cut to its longest real sequence
(``modelyard.nn.masking.cut_padding``, ``cut_pad_id``) gives the same outputs as the full one.

Every export (and every reuse of the cached ``model.onnx`` in the model version folder) is
checked numerically against torch on random inputs at two batch sizes (and, with a token axis,
at three lengths); a graph that
disagrees by more than ``atol`` (+ ``rtol`` of the value) is refused with ExportError.
An ONNX file holds a graph of standard operators and tensors only: loading it runs no code.

An int8 version (``modelyard compress --quantize int8``) is never exported here: torch's
quantized modules have no faithful ONNX form. Its ONNX Runtime int8 graph was made and
checked against the torch int8 model when it was compressed; ``from_predictor`` loads that
stored graph with its recorded check (``compression.loading.stored_int8_graph``).

The ONNX Runtime serving backend built on these graphs is ``modelyard.serving.onnx_backend``;
this module imports nothing from serving, so compression and serving do not import each other
in a circle.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from modelyard.errors import ExportError, MissingDependencyError, optional_dependency

__all__ = [
    "ONNX_FILE",
    "WithActivation",
    "example_input",
    "export_graph",
    "export_onnx",
    "check_onnx",
    "cut_pad_id",
    "has_token_axis",
    "ort_session",
]

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17


class WithActivation(nn.Module):
    """``network.probabilities(network(x))`` as one module, so the activation is exported too."""

    def __init__(self, network: Any) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.probabilities(self.network(x))


def cut_pad_id(network: Any) -> int | None:
    """The pad id by which a batch of this network's token ids may be cut to its longest real
    sequence with the same outputs (``Network.any_length``), else None."""
    if getattr(network, "any_length", False) and len(getattr(network, "input_shape", ())) == 1:
        return int(network.pad_id)
    return None


def has_token_axis(session: Any) -> bool:
    """True when the session's one input is ``[batch, tokens]`` with both axes dynamic."""
    shape = session.get_inputs()[0].shape
    return len(shape) == 2 and not isinstance(shape[1], int)


def example_input(network: Any, batch: int, seed: int = 0, length: int | None = None) -> torch.Tensor:
    """Random model-ready inputs: normal floats, or valid token ids for integer inputs
    (``length`` tokens instead of the full ``input_shape[0]``, for graphs with a token axis)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, *network.input_shape)
    if length is not None:
        shape = (batch, length, *network.input_shape[1:])
    if network.input_dtype == torch.int64:
        vocab = min((m.num_embeddings for m in network.modules() if isinstance(m, nn.Embedding)), default=2)
        return torch.randint(0, vocab, shape, generator=gen)
    return torch.randn(shape, generator=gen)


def export_onnx(network: Any, *, atol: float = 1e-4, rtol: float = 1e-4) -> bytes:
    """The network (with its output activation) as ONNX bytes, verified against torch."""
    data = export_graph(network)
    check_onnx(data, network, atol=atol, rtol=rtol)
    return data


def export_graph(network: Any) -> bytes:
    """The network (with its output activation) as ONNX bytes, not yet checked (``check_onnx`` does that)."""
    _refuse_unexportable(network)
    module = WithActivation(network).eval()
    example = example_input(network, 2)
    tokens = cut_pad_id(network) is not None
    axes = {0: "batch", 1: "tokens"} if tokens else {0: "batch"}
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which is
            # ~10x slower to export these small graphs; it is the fallback below.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": axes, "output": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        data = buffer.getvalue()
    except Exception as exc:  # the legacy exporter may be gone in a future torch
        log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
        data = _export_dynamo(module, example, tokens)
    return data


def _refuse_unexportable(network: Any) -> None:
    """ExportError for a layer that says it has no ONNX form when it gets the padding mask
    (``onnx_with_mask = False``: recurrent layers on packed sequences)."""
    masked = getattr(network, "takes_mask", ())
    if not masked:  # no padding mask (static int8 networks keep their layers in an FX GraphModule)
        return
    for record, module, takes in zip(getattr(network, "records", ()), getattr(network, "layers", ()), masked):
        if takes and not getattr(module, "onnx_with_mask", True):
            raise ExportError(
                f"Cannot export the network to ONNX: `{record.field}` ({record.type}) runs on packed sequences "
                f"to skip the padding, which ONNX export does not support; serve the model with the torch backend"
            )


def _export_dynamo(module: nn.Module, example: torch.Tensor, tokens: bool) -> bytes:
    shapes = {0: torch.export.Dim("batch")}
    if tokens:
        shapes[1] = torch.export.Dim("tokens", min=1, max=example.shape[1])
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=(shapes,),
                verbose=False,
            )
            with io.BytesIO() as out:
                program.save(out)  # type: ignore[union-attr]
                return out.getvalue()
    except Exception as exc:
        missing = (
            MissingDependencyError.from_import(exc, "serve", "ONNX export") if isinstance(exc, ImportError) else None
        )
        raise missing or ExportError(f"Cannot export the network to ONNX: {type(exc).__name__}: {exc}") from None


def ort_session(data: bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for ``data``; ExportError when it cannot load the graph."""
    with optional_dependency("serve", "An ONNX Runtime session"):
        import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # Idle ORT threads spin by default; in a server they would take CPU from the event loop.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own (non-Python-standard) error types
        raise ExportError(f"ONNX Runtime cannot load the exported graph: {exc}") from None


def check_onnx(data: bytes, network: Any, *, atol: float = 1e-4, rtol: float = 1e-4, session: Any = None) -> float:
    """Largest |onnx - torch| on random inputs at batch sizes 1 and 5 (with a token axis: at the
    full length, at 1 token and at a third of it); ExportError past tolerance."""
    session = session or ort_session(data, threads=1)
    module = WithActivation(network).eval()
    worst = 0.0
    cases: list[tuple[int, int | None]] = [(1, None), (5, None)]
    if cut_pad_id(network) is not None and has_token_axis(session):
        cases += [(1, 1), (5, max(1, network.input_shape[0] // 3))]
    for batch, length in cases:
        x = example_input(network, batch, seed=batch, length=length)
        with torch.no_grad():
            want = module(x).float().numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        if got.shape != want.shape:
            raise ExportError(
                f"The ONNX graph disagrees with torch: expected outputs of shape {list(want.shape)}, received {list(got.shape)}"
            )
        if not np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
            diff = float(np.nanmax(np.abs(got - want)))
            raise ExportError(
                f"The ONNX graph disagrees with torch: expected outputs within {atol:g} (+{rtol:g}·|value|), received a difference of {diff:.3g}"
            )
        worst = max(worst, float(np.nanmax(np.abs(got - want), initial=0.0)))
    return worst
