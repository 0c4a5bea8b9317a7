"""The ONNX Runtime bound-buffer call: a serving fast path behind ``modelyard.fast_paths``.

It leans on onnxruntime's IO binding and, when present, the native session under
``InferenceSession._sess``; both are declared below as protocols, and ``GATE`` names the
onnxruntime versions it was tested with. Outside them, or with ``MODELYARD_FAST_PATHS=0``, the
ONNX backend runs the plain ``InferenceSession.run``.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from modelyard.fast_paths import Gate

__all__ = ["GATE", "BindableSession", "NativeSession", "BoundBuffers"]

GATE = Gate("onnx_bound_buffers", "onnxruntime", "1.18", "1.33")


@runtime_checkable
class BindableSession(Protocol):
    """What the bound-buffer call needs of an ``onnxruntime.InferenceSession``."""

    def get_inputs(self) -> Any: ...
    def get_outputs(self) -> Any: ...
    def io_binding(self) -> Any: ...
    def run_with_iobinding(self, iobinding: Any, run_options: Any = None) -> Any: ...


@runtime_checkable
class NativeSession(Protocol):
    """The C++ session under ``InferenceSession._sess``: runs a native binding (``IOBinding._iobinding``)."""

    def run_with_iobinding(self, iobinding: Any, run_options: Any) -> Any: ...


_memmove = ctypes.memmove
# (native binding, input buffer, output buffer, Python IOBinding, input address, input bytes)
_Entry = tuple[Any, torch.Tensor, np.ndarray, Any, int, int]


_TORCH_TYPES = {"tensor(float)": torch.float32, "tensor(int64)": torch.int64, "tensor(double)": torch.float64}
_NUMPY_TYPES = {torch.float32: np.float32, torch.int64: np.int64, torch.float64: np.float64}


class BoundBuffers:
    """IO binding with buffers kept per input shape: each call copies the input in and the output out.

    ``session.run`` validates its arguments, wraps its numpy inputs and allocates its outputs on
    every call; binding an input and an output buffer once per shape leaves one copy each way.
    Repeated shapes skip the dict reordering, a contiguous CPU input is copied in with one
    ``memmove``, the run uses the backend's one ``RunOptions`` and the session's native
    ``run_with_iobinding`` (``NativeSession``) when it has one, and the output comes back as a
    numpy copy, which the server encodes as it is (what each step saves: docs/performance.md).
    Bounded: at most ``MAX_SIZES`` shapes (least recently used dropped) of at most ``MAX_BYTES``
    each; anything else (other dtypes or shapes, bigger batches, inputs that need gradients)
    takes the plain ``session.run`` path. A lock makes a backend shared between threads safe;
    each call returns a fresh array.
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
        # (``_sess``); calling that directly skips the shim. Any other layout: the public API.
        native = getattr(session, "_sess", None)
        if isinstance(native, NativeSession):
            self._run, self._native = native.run_with_iobinding, lambda binding: binding._iobinding
        else:
            self._run, self._native = session.run_with_iobinding, lambda binding: binding

    @classmethod
    def for_session(cls, session: Any, options: Any) -> BoundBuffers | None:
        """Buffers for a one-input, one-output graph with a leading batch axis and fixed other axes.

        None (the backend runs ``session.run``) when the graph does not fit, the session lacks what
        ``BindableSession`` names, or ``GATE`` is closed (fast paths off, untested onnxruntime).
        """
        if not GATE.open() or not isinstance(session, BindableSession):
            return None
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

        Kept lean, it runs per call (at batch 1 this wrapper is a large part of a small model's
        time). A repeat of the last shape costs two attribute checks, the lock, a shape
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
