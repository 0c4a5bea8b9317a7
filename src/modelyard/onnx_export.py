"""ONNX export of a registered model, checked against torch, and an ONNX Runtime backend.

The exported graph is the network *plus* its output activation (``Network.probabilities``),
so it maps preprocessed features to exactly what ``Predictor.predict_tensor`` returns:
probabilities for classifiers, values for regression. The batch axis is dynamic.

Every export (and every reuse of the cached ``model.onnx`` in the model version folder) is
checked numerically against torch on random inputs at two batch sizes; a graph that
disagrees by more than ``atol`` (+ ``rtol`` of the value) is refused with ExportError.
An ONNX file holds a graph of standard operators and tensors only: loading it runs no code.

An int8 version (``modelyard compress --quantize int8``) is never exported here: torch's
quantized modules have no faithful ONNX form. Its ONNX Runtime int8 graph was made and
checked against the torch int8 model when it was compressed; ``from_predictor`` loads that
stored graph with its recorded check (``compression.loading.stored_int8_graph``).
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import threading
import warnings
from collections import OrderedDict
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
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        data = buffer.getvalue()
    except Exception as exc:  # the legacy exporter may be gone in a future torch
        log.info("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
        data = _export_dynamo(module, example)
    return data


def _export_dynamo(module: nn.Module, example: torch.Tensor) -> bytes:
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=["output"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
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


class OnnxBackend:
    """``predict_tensor`` through ONNX Runtime, the same contract as ``Predictor.predict_tensor``;
    ``predict_array`` gives the same values as a numpy array (the serving path).

    ``graph`` names the graph (``model.onnx``: exported from the float network; ``model.int8.onnx``:
    an int8 version's stored graph) and ``check`` how it was verified against torch.
    """

    name = "onnx"

    def __init__(
        self,
        data: bytes,
        *,
        threads: int | None = None,
        max_abs_diff: float | None = None,
        check: dict[str, Any] | None = None,
        graph: str = ONNX_FILE,
    ) -> None:
        import onnxruntime as ort

        self._session = _session(data, threads)
        # Given None, onnxruntime builds default RunOptions on every run (2-4 µs at batch 1); these
        # are read-only during a run, so one serves every call and thread.
        self._options = ort.RunOptions()
        self.max_abs_diff = max_abs_diff  # largest |onnx - torch| seen when the graph was checked
        self.check = (
            check if check is not None else ({"max_abs_diff": max_abs_diff} if max_abs_diff is not None else {})
        )
        self.graph = graph
        self._bound = _BoundBuffers.for_session(self._session, self._options)

    @classmethod
    def from_predictor(cls, predictor: Any, *, cache: bool = True, threads: int | None = None) -> OnnxBackend:
        """Export (or reuse ``<version folder>/model.onnx``), check against torch, load.

        An int8 version loads its stored, checked int8 graph instead; it is never exported.
        """
        network = predictor.network
        path: Path | None = getattr(predictor.version, "path", None)
        if _is_int8(predictor, path):
            return cls._stored_int8(predictor, threads)
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
        return cls(data, threads=threads, max_abs_diff=diff, check={"max_abs_diff": diff, "atol": 1e-4, "rtol": 1e-4})

    @classmethod
    def _stored_int8(cls, predictor: Any, threads: int | None) -> OnnxBackend:
        from modelyard.compression.loading import INT8_ONNX_FILE, stored_int8_graph

        if getattr(predictor.version, "path", None) is None:
            raise ExportError(f"Model {predictor.ref} is quantized to int8 and has no stored ONNX Runtime int8 graph")
        data, check = stored_int8_graph(predictor.version)  # ExportError when missing or not the checked file
        backend = cls(data, threads=threads, max_abs_diff=check.get("max_abs_diff"), check=check, graph=INT8_ONNX_FILE)
        network = predictor.network
        with torch.inference_mode():
            for batch in (1, 5):  # the file is the one that was checked (sha256); this guards its wiring
                x = _example(network, batch, seed=batch)
                want, got = network.probabilities(network(x)).shape, backend.predict_tensor(x).shape
                if got != want:
                    raise ExportError(
                        f"The int8 ONNX graph of model {predictor.ref} does not fit the model: expected "
                        f"outputs of shape {list(want)}, received {list(got)}"
                    )
        return backend

    def predict_array(self, features: torch.Tensor) -> np.ndarray:
        """The outputs as a fresh numpy array: what the server runs (it encodes numpy, so no tensor is made)."""
        bound = self._bound
        if bound is not None:
            out = bound.run(features)
            if out is not None:
                return out
        array = features.detach().cpu().resolve_neg().numpy()
        return self._session.run(None, {"input": array}, self._options)[0]

    def predict_tensor(self, features: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.predict_array(features))


def _is_int8(predictor: Any, path: Path | None) -> bool:
    from modelyard.compression.quantize import is_quantized

    if is_quantized(predictor.network):
        return True
    if path is None:
        return False
    from modelyard.compression.loading import compression_info

    return bool((compression_info(predictor.version) or {}).get("quantization"))


_memmove = ctypes.memmove
# (native binding, input buffer, output buffer, Python IOBinding, input address, input bytes)
_Entry = tuple[Any, torch.Tensor, np.ndarray, Any, int, int]


_TORCH_TYPES = {"tensor(float)": torch.float32, "tensor(int64)": torch.int64, "tensor(double)": torch.float64}
_NUMPY_TYPES = {torch.float32: np.float32, torch.int64: np.int64, torch.float64: np.float64}


class _BoundBuffers:
    """IO binding with buffers kept per input shape: each call copies the input in and the output out.

    ``session.run`` validates its arguments, wraps its numpy inputs and allocates its outputs on
    every call. Binding an input and an output buffer once per shape leaves one copy each way.
    At batch 1 the Python around the run is what is left to cut (the Fashion-MNIST MLP's int8
    graph runs in ~14 µs, the call in ~25 µs): this path avoids numpy round trips, dict
    reordering on repeated shapes and onnxruntime's Python shim, ~3 µs less than the first
    binding version. It also runs with the backend's one ``RunOptions``, copies a contiguous
    CPU input in with one ``memmove`` (~2 µs less than ``Tensor.copy_`` as served) and returns
    the output as a numpy copy, which the server encodes as it is (a torch tensor per call
    costs 5-7 µs more; docs/compression.md). Bounded: at most ``MAX_SIZES`` shapes (least
    recently used dropped) of at most ``MAX_BYTES`` each; anything else (other dtypes or
    shapes, bigger batches, inputs that need gradients) takes the plain ``session.run`` path.
    A lock makes a backend shared between threads safe; each call returns a fresh array.
    """

    MAX_SIZES = 16
    MAX_BYTES = 1 << 20

    def __init__(
        self,
        session: Any,
        options: Any,
        in_dtype: torch.dtype,
        in_tail: tuple[int, ...],
        out_dtype: torch.dtype,
        out_tail: tuple[int, ...],
    ) -> None:
        self._session = session
        self._dtype = in_dtype
        self._in = (session.get_inputs()[0].name, in_tail)
        self._out = (session.get_outputs()[0].name, out_dtype, out_tail)
        self._per_sample = math.prod(in_tail) * in_dtype.itemsize + math.prod(out_tail) * out_dtype.itemsize
        self._entries: OrderedDict[torch.Size, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._last_shape: torch.Size | None = None
        self._last: _Entry | None = None
        self._options = options
        # onnxruntime's InferenceSession.run_with_iobinding is a Python shim over its C++ session
        # (``_sess``); calling that directly saves ~0.4 µs a call. Any other layout: the public API.
        native = getattr(session, "_sess", None)
        if callable(getattr(native, "run_with_iobinding", None)):
            self._run, self._native = native.run_with_iobinding, lambda binding: binding._iobinding
        else:
            self._run, self._native = session.run_with_iobinding, lambda binding: binding

    @classmethod
    def for_session(cls, session: Any, options: Any) -> _BoundBuffers | None:
        """Buffers for a one-input, one-output graph with a leading batch axis and fixed other axes."""
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            return None
        in_dtype, out_dtype = _TORCH_TYPES.get(inputs[0].type), _TORCH_TYPES.get(outputs[0].type)
        in_tail, out_tail = inputs[0].shape[1:], outputs[0].shape[1:]
        if in_dtype is None or out_dtype is None or not all(isinstance(d, int) for d in [*in_tail, *out_tail]):
            return None
        return cls(session, options, in_dtype, tuple(in_tail), out_dtype, tuple(out_tail))

    def run(self, x: torch.Tensor) -> np.ndarray | None:
        """The outputs for ``x``, or None when ``x`` does not fit bound buffers.

        Kept lean, it runs per call: at batch 1 this wrapper is a third of a small model's
        time. A repeat of the last shape costs two attribute checks, the lock, a shape
        comparison, the copy in (``memmove`` for a contiguous CPU tensor; ``Tensor.copy_``
        takes strided, GPU or negated-view ones), the session's C++ ``run_with_iobinding``
        and the numpy copy out. Autograd inputs take the plain path.
        """
        if x.dtype is not self._dtype or x.requires_grad:
            return None
        with self._lock:
            shape = x.shape
            if shape == self._last_shape:  # the entry is already the most recently used one
                entry = self._last
            else:
                entry = self._entries.get(shape)
                if entry is None:
                    entry = self._bind(shape)
                    if entry is None:
                        return None
                else:
                    self._entries.move_to_end(shape)
                self._last_shape, self._last = shape, entry
            binding, inp, out, _, address, nbytes = entry
            if x.is_contiguous() and x.is_cpu and not x.is_neg():  # same dtype and shape: the same bytes
                _memmove(address, x.data_ptr(), nbytes)
            else:
                inp.copy_(x)
            self._run(binding, self._options)
            return out.copy()

    def _bind(self, shape: torch.Size) -> _Entry | None:
        (in_name, in_tail), (out_name, out_dtype, out_tail) = self._in, self._out
        n = shape[0] if len(shape) else 0
        if n == 0 or tuple(shape[1:]) != in_tail or n * self._per_sample > self.MAX_BYTES:
            return None
        with torch.inference_mode(False):  # a plain tensor: in-place copies work in and out of inference mode
            inp = torch.empty(shape, dtype=self._dtype)
        out = np.empty((n, *out_tail), dtype=_NUMPY_TYPES[out_dtype])
        binding = self._session.io_binding()
        binding.bind_input(in_name, "cpu", 0, _NUMPY_TYPES[self._dtype], list(shape), inp.data_ptr())
        binding.bind_output(out_name, "cpu", 0, out.dtype.type, list(out.shape), out.ctypes.data)
        # The entry keeps the Python IOBinding too: it owns the native one that runs.
        self._entries[shape] = entry = (self._native(binding), inp, out, binding, inp.data_ptr(), inp.nbytes)
        if len(self._entries) > self.MAX_SIZES:
            self._entries.popitem(last=False)
        return entry


def _write_cache(path: Path, data: bytes) -> None:
    from modelyard._files import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # a read-only store still serves; it just exports at each start
        log.warning("cannot cache the ONNX graph at %s: %s", path, exc)
