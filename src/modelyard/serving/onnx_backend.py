"""The ONNX Runtime serving backend: a registered model's checked graph behind ``predict_array``.

``OnnxBackend.from_predictor`` exports the float network (or reuses the cached ``model.onnx``)
and checks it against torch (``compression.onnx_graph``); an int8 version loads its stored,
checked int8 graph instead. Calls go through bound buffers (``serving.fast.onnx_bound``) when
that fast path is open, else through the plain ``InferenceSession.run``.

A text model's graph has a dynamic token axis (``compression.onnx_graph``): each batch is cut to
its longest real sequence before the run, as ``Predictor.predict_tensor`` does for torch, so
the server's batches are padded per batch, not to the tokenizer's ``max_length``. A graph
without that axis (an older export) takes the full-length ids, and a cached ``model.onnx``
without it is exported again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard._files import atomic_write_bytes
from modelyard.compression.loading import INT8_ONNX_FILE, compression_info, stored_int8_graph
from modelyard.compression.onnx_graph import (
    ONNX_FILE,
    check_onnx,
    cut_pad_id,
    example_input,
    export_graph,
    has_token_axis,
    ort_session,
)
from modelyard.compression.quantize import is_quantized
from modelyard.errors import ExportError, optional_dependency
from modelyard.nn.masking import cut_padding
from modelyard.serving.fast.onnx_bound import GATE, BoundBuffers

__all__ = ["OnnxBackend"]

log = logging.getLogger(__name__)


class OnnxBackend:
    """``predict_tensor`` through ONNX Runtime, the same contract as ``Predictor.predict_tensor``;
    ``predict_array`` gives the same values as a numpy array (the serving path).

    ``graph`` names the graph (``model.onnx``: exported from the float network; ``model.int8.onnx``:
    an int8 version's stored graph) and ``check`` how it was verified against torch. ``pad_id``
    (``onnx_graph.cut_pad_id`` of the network): token ids are cut to each batch's longest real
    sequence when the graph has a token axis.
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
        pad_id: int | None = None,
    ) -> None:
        with optional_dependency("serve", "The ONNX Runtime backend"):
            import onnxruntime as ort

        self._session = ort_session(data, threads)
        # Given None, onnxruntime builds default RunOptions on every run; these are read-only
        # during a run, so one serves every call and thread.
        self._options = ort.RunOptions()
        self.max_abs_diff = max_abs_diff  # largest |onnx - torch| seen when the graph was checked
        self.check = (
            check if check is not None else ({"max_abs_diff": max_abs_diff} if max_abs_diff is not None else {})
        )
        self.graph = graph
        self.pad_id = pad_id if pad_id is not None and has_token_axis(self._session) else None
        # None when the fast path is fenced off (modelyard.fast_paths): then session.run serves.
        self._bound = BoundBuffers.for_session(self._session, self._options)
        blocked = GATE.blocked()
        # What serves each call, for the model listing's backend info (the runtime report of serving).
        self.call = (
            "bound-buffers" if self._bound is not None else f"session.run{f' (fast path {blocked})' if blocked else ''}"
        )

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
        pad_id = cut_pad_id(network)
        if cached is not None and cached.is_file():
            data = cached.read_bytes()
            try:
                session = ort_session(data, threads=1)
                diff = check_onnx(data, network, session=session)
                if pad_id is not None and not has_token_axis(session):
                    log.info("cached %s has no token axis; exporting again", cached)
                    data = None
            except ExportError as exc:
                log.warning("cached %s does not match the weights (%s); exporting again", cached, exc)
                data = None
        if data is None:
            data = export_graph(network)
            diff = check_onnx(data, network)
            if cached is not None:
                _write_cache(cached, data)
        check = {"max_abs_diff": diff, "atol": 1e-4, "rtol": 1e-4}
        return cls(data, threads=threads, max_abs_diff=diff, check=check, pad_id=pad_id)

    @classmethod
    def _stored_int8(cls, predictor: Any, threads: int | None) -> OnnxBackend:
        if getattr(predictor.version, "path", None) is None:
            raise ExportError(f"Model {predictor.ref} is quantized to int8 and has no stored ONNX Runtime int8 graph")
        data, check = stored_int8_graph(predictor.version)  # ExportError when missing or not the checked file
        network = predictor.network
        backend = cls(
            data,
            threads=threads,
            max_abs_diff=check.get("max_abs_diff"),
            check=check,
            graph=INT8_ONNX_FILE,
            pad_id=cut_pad_id(network),
        )
        with torch.inference_mode():
            for batch in (1, 5):  # the file is the one that was checked (sha256); this guards its wiring
                x = example_input(network, batch, seed=batch)
                want, got = network.probabilities(network(x)).shape, backend.predict_tensor(x).shape
                if got != want:
                    raise ExportError(
                        f"The int8 ONNX graph of model {predictor.ref} does not fit the model: expected "
                        f"outputs of shape {list(want)}, received {list(got)}"
                    )
        return backend

    def predict_array(self, features: torch.Tensor) -> np.ndarray:
        """The outputs as a fresh numpy array: what the server runs (it encodes numpy, so no tensor is made)."""
        if self.pad_id is not None:
            features = cut_padding(features, self.pad_id)
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
    if is_quantized(predictor.network):
        return True
    if path is None:
        return False
    return bool((compression_info(predictor.version) or {}).get("quantization"))


def _write_cache(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # a read-only store still serves; it just exports at each start
        log.warning("cannot cache the ONNX graph at %s: %s", path, exc)
