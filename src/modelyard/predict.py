"""Predictor: a registered model version, rebuilt from its declarative spec and safetensors
weights (no code is executed on load), with its fitted preprocessing.

``modelyard.load("name:N").predict(x)``, ``modelyard predict`` and the HTTP server all go
through ``Predictor.predict``, so the same input gives the same output everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.compression.loading import restore_weights
from modelyard.data import Pipeline
from modelyard.errors import InputError
from modelyard.nn import Network, build_model
from modelyard.nn.masking import cut_padding
from modelyard.spec import Spec, load_spec
from modelyard.store import ModelStore, ModelVersion
from modelyard.version_summary import class_names, model_schema

__all__ = ["Predictor", "load"]


@dataclass
class Predictor:
    """A model version ready to predict on raw (un-preprocessed) inputs."""

    version: ModelVersion
    spec: Spec
    network: Network
    pipeline: Pipeline
    meta: dict[str, Any]
    device: torch.device

    @classmethod
    def load(cls, ref: str, *, home: str | Path | None = None, device: str = "cpu") -> Predictor:
        return cls.from_version(ModelStore(home).get(ref), device=device)

    @classmethod
    def from_version(cls, version: ModelVersion, *, device: str = "cpu") -> Predictor:
        """The Predictor of a version already looked up in the store."""
        spec = load_spec(version.load_spec())
        meta = version.load_preprocess()
        network = build_model(spec.model, loss=spec.train.loss.type)
        restore_weights(network, version)  # applies compression.json (int8) when there is one
        dev = torch.device(device)
        network.to(dev).eval()
        return cls(
            version=version,
            spec=spec,
            network=network,
            pipeline=Pipeline.from_state(meta["pipeline"]),
            meta=meta,
            device=dev,
        )

    # -- metadata ---------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def task(self) -> str:
        return self.meta.get("task") or self.spec.task

    @property
    def class_names(self) -> list[str] | None:
        return class_names(self.meta)

    @property
    def input_shape(self) -> list[int]:
        """Shape of one raw input sample, before preprocessing."""
        return list(self.pipeline.raw_input_shape)

    def schema(self) -> dict[str, Any]:
        """Input/output description for `models show` and the server's model listing."""
        return {"model": self.ref, **model_schema(self.network, self.spec, self.meta, self.input_shape)}

    # -- prediction -------------------------------------------------------------------------
    def preprocess(self, x: Any) -> torch.Tensor:
        """Raw inputs (one sample or a batch) → model-ready tensor on the device."""
        if self.pipeline.kind == "text":  # strings: the pipeline's tokenize step checks and encodes them
            return torch.from_numpy(self.pipeline.transform_x(x)).to(self.device)
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"Invalid input: expected numbers of shape {self.input_shape} per instance, could not convert: {exc}"
            ) from None
        if arr.ndim == len(self.input_shape):
            arr = arr[None]
        features = self.pipeline.transform_x(arr)
        tensor = torch.from_numpy(np.ascontiguousarray(features))
        if self.network.input_dtype == torch.int64:
            tensor = tensor.round().to(torch.int64)
        return tensor.to(self.device)

    @torch.inference_mode()
    def predict_tensor(self, features: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Preprocessed tensor → outputs (probabilities for classifiers, values for regression)."""
        if getattr(self.network, "any_length", False):  # token ids: no work on columns of pads (same outputs)
            features = cut_padding(features, self.network.pad_id)
        outs = [
            self.network.probabilities(self.network(features[i : i + batch_size]))
            for i in range(0, len(features), batch_size)
        ]
        return torch.cat(outs).float().cpu()

    @torch.inference_mode()
    def embed_tensor(self, features: torch.Tensor) -> torch.Tensor:
        """Preprocessed token ids → the pooled sequence vectors ``[N, D]`` (the network's
        ``pooling_index`` layer); an InputError for a model without one."""
        if getattr(self.network, "pooling_index", None) is None:
            raise InputError(
                f"Model {self.ref} has no embeddings: expected a network that pools padded tokens "
                "(an embedding with `pad` and a token_pool or recurrent layer), this one has none"
            )
        return self.network.embed(cut_padding(features, self.network.pad_id)).float().cpu()

    def embed(self, x: Any) -> np.ndarray:
        """Embeddings of raw inputs (strings for a text model)."""
        return self.embed_tensor(self.preprocess(x)).numpy()

    def predict(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Outputs for raw inputs: class probabilities for classifiers, values for regression."""
        return self.predict_tensor(self.preprocess(x), batch_size).numpy()

    def predict_labels(self, x: Any) -> list[Any]:
        """Class names (or indices) for classifiers; raises InputError for regression models."""
        if self.task != "classification":
            raise InputError(f"Model {self.ref} is a regression model; it predicts values, not labels")
        return self.labels_from(self.predict(x))

    def labels_from(self, probs: np.ndarray) -> list[Any]:
        if probs.ndim == 2 and probs.shape[1] == 1:  # one sigmoid output
            idx = (probs[:, 0] >= 0.5).astype(int)
        else:
            idx = probs.argmax(axis=1)
        names = self.class_names
        return [names[i] if names and i < len(names) else int(i) for i in idx]

    def records(self, x: Any) -> list[dict[str, Any]]:
        """JSON-ready predictions: label + probabilities for classifiers, values for regression."""
        out = self.predict(x)
        if self.task == "classification":
            labels = self.labels_from(out)
            return [{"label": lab, "probabilities": [float(p) for p in row]} for lab, row in zip(labels, out)]
        return [{"value": [float(v) for v in np.ravel(row)]} for row in out]


def load(ref: str, *, home: str | Path | None = None, device: str = "cpu") -> Predictor:
    """Load a registered model version: ``modelyard.load("fashion-mlp:1").predict(x)``."""
    return Predictor.load(ref, home=home, device=device)
