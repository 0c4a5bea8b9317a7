"""ONNX export of a registered model, checked against torch, and an ONNX Runtime backend.

The exported graph is the network *plus* its output activation (``Network.probabilities``),
so it maps preprocessed features to exactly what ``Predictor.predict_tensor`` returns:
probabilities for classifiers, values for regression. The batch axis is dynamic.

Every export (and every reuse of the cached ``model.onnx`` in the model version folder) is
checked numerically against torch on random inputs at two batch sizes; a graph that
disagrees by more than ``atol`` (+ ``rtol`` of the value) is refused with ExportError.
An ONNX file holds a graph of standard operators and tensors only: loading it runs no code.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelyard.errors import ModelyardError

__all__ = ["ExportError", "ONNX_FILE", "export_onnx", "check_onnx", "OnnxBackend"]

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 17


class ExportError(ModelyardError):
    """The network cannot be exported to ONNX, or the exported graph disagrees with torch."""

    http_status = 500
    exit_code = 1


class _WithActivation(nn.Module):
    """``network.probabilities(network(x))`` as one module, so the activation is exported too."""

    def __init__(self, network: Any) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.probabilities(self.network(x))


def _example(network: Any, batch: int, seed: int = 0) -> torch.Tensor:
    """Random model-ready inputs: normal floats, or valid token ids for integer inputs."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, *network.input_shape)
    if network.input_dtype == torch.int64:
        vocab = min((m.num_embeddings for m in network.modules() if isinstance(m, nn.Embedding)), default=2)
        return torch.randint(0, vocab, shape, generator=gen)
    return torch.randn(shape, generator=gen)


def export_onnx(network: Any, *, atol: float = 1e-4, rtol: float = 1e-4) -> bytes:
    """The network (with its output activation) as ONNX bytes, verified against torch."""
    data = _export(network)
    check_onnx(data, network, atol=atol, rtol=rtol)
    return data


def _export(network: Any) -> bytes:
    module = _WithActivation(network).eval()
    example = _example(network, 2)
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which is
            # ~10x slower to export these small graphs; it is the fallback below.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buffer, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        data = buffer.getvalue()
    except Exception as exc:  # the legacy exporter may be gone in a future torch
        log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
        data = _export_dynamo(module, example)
    return data


def _export_dynamo(module: nn.Module, example: torch.Tensor) -> bytes:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, input_names=["input"], output_names=["output"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            with io.BytesIO() as out:
                program.save(out)  # type: ignore[union-attr]
                return out.getvalue()
    except Exception as exc:
        raise ExportError(f"Cannot export the network to ONNX: {type(exc).__name__}: {exc}") from None


def _session(data: bytes, threads: int | None = None) -> Any:
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
    """Largest |onnx - torch| on random inputs at batch sizes 1 and 5; ExportError past tolerance."""
    session = session or _session(data, threads=1)
    module = _WithActivation(network).eval()
    worst = 0.0
    for batch in (1, 5):
        x = _example(network, batch, seed=batch)
        with torch.no_grad():
            want = module(x).float().numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        if got.shape != want.shape:
            raise ExportError(f"The ONNX graph disagrees with torch: expected outputs of shape {list(want.shape)}, received {list(got.shape)}")
        if not np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
            diff = float(np.nanmax(np.abs(got - want)))
            raise ExportError(f"The ONNX graph disagrees with torch: expected outputs within {atol:g} (+{rtol:g}·|value|), received a difference of {diff:.3g}")
        worst = max(worst, float(np.nanmax(np.abs(got - want), initial=0.0)))
    return worst


class OnnxBackend:
    """``predict_tensor`` through ONNX Runtime, the same contract as ``Predictor.predict_tensor``."""

    name = "onnx"

    def __init__(self, data: bytes, *, threads: int | None = None, max_abs_diff: float | None = None) -> None:
        self._session = _session(data, threads)
        self.max_abs_diff = max_abs_diff  # measured against torch when the graph was checked

    @classmethod
    def from_predictor(cls, predictor: Any, *, cache: bool = True, threads: int | None = None) -> OnnxBackend:
        """Export (or reuse ``<version folder>/model.onnx``), check against torch, load."""
        network = predictor.network
        path: Path | None = getattr(predictor.version, "path", None)
        cached = Path(path) / ONNX_FILE if cache and path is not None else None
        data: bytes | None = None
        if cached is not None and cached.is_file():
            data = cached.read_bytes()
            try:
                diff = check_onnx(data, network)
            except ExportError as exc:
                log.warning("cached %s does not match the weights (%s); exporting again", cached, exc)
                data = None
        if data is None:
            data = _export(network)
            diff = check_onnx(data, network)
            if cached is not None:
                _write_cache(cached, data)
        return cls(data, threads=threads, max_abs_diff=diff)

    def predict_tensor(self, features: torch.Tensor) -> torch.Tensor:
        array = features.detach().cpu().numpy()
        return torch.from_numpy(self._session.run(None, {"input": array})[0])


def _write_cache(path: Path, data: bytes) -> None:
    from modelyard._files import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # a read-only store still serves; it just exports at each start
        log.warning("cannot cache the ONNX graph at %s: %s", path, exc)
