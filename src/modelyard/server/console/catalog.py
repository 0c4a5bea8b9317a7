"""What the console reads about runs and model versions, in JSON-ready form.

Two things are derived rather than stored:

- the input schema of a version plus *input hints* for the playground: whether an input
  can be drawn as an image (height, width, channels, the pixel value range of the
  training images and how much of the frame a drawing should fill), is a row of named
  features, a text, or raw audio at the model's sample rate (recorded or uploaded as a WAV). Built by loading the version once (``Predictor``), then cached by ref;
- the confusion matrix: read from the version's ``metrics.json`` when the spec asked for
  the ``confusion_matrix`` metric, otherwise computed on the version's own evaluation
  split (the same split and preprocessing checks as ``modelyard eval``) on first request
  and cached in memory. Versions never change, so neither cache needs invalidating.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from modelyard.data.access import DataAccess, confined
from modelyard.errors import InputError
from modelyard.store import ModelStore, ModelVersion, RunStore

__all__ = ["Catalog", "input_hints", "pipeline_version"]

#: The longest utterance the playground records for a voice pipeline (the server's own limit, 60 s by default, still holds).
PIPELINE_SECONDS = 15.0

# Pixel range and how much of the frame a digit fills, per built-in image source:
# MNIST-style digits are centred in a 20x20 box of the 28x28 frame (LeCun et al.'s
# MNIST description); scikit-learn's 8x8 digits span the frame with values 0..16.
_SOURCE_IMAGES = {
    "digits": {"height": 8, "width": 8, "channels": 1, "max_value": 16.0, "fit": 1.0},
    "mnist": {"height": 28, "width": 28, "channels": 1, "max_value": 255.0, "fit": 20 / 28},
    "fashion-mnist": {"height": 28, "width": 28, "channels": 1, "max_value": 255.0, "fit": 20 / 28},
}


def input_hints(
    schema: dict[str, Any], spec: dict[str, Any], kind: str | None, *, sample_rate: int | None = None
) -> dict[str, Any]:
    """``{"image": geometry | None, "features": [names] | None, "text": {max_tokens} | None,
    "audio": {sample_rate, seconds} | None}`` for the playground.

    ``sample_rate``: the rate a raw-audio model takes (``nn.layers.audio.input_sample_rate``);
    its playground records or uploads a WAV at that rate instead of showing one field per sample.
    """
    none = {"image": None, "features": None, "text": None, "audio": None}
    if kind == "text":  # strings in: the playground shows a text box (max_tokens: the model's sequence length)
        model_input = (spec.get("model") or {}).get("input") or []
        return none | {"text": {"max_tokens": int(model_input[0]) if model_input else None}}
    shape = [int(s) for s in schema.get("input_shape") or []]
    if sample_rate is not None and len(shape) == 1:
        return none | {"audio": {"sample_rate": sample_rate, "seconds": shape[0] / sample_rate}}
    size = math.prod(shape) if shape else 0
    source = str(((spec.get("data") or {}).get("source") or {}).get("type", ""))
    image = None
    known = _SOURCE_IMAGES.get(source)
    if known is not None and size == known["height"] * known["width"] * known["channels"]:
        image = dict(known)
    elif kind == "image" or source == "images":
        if len(shape) == 3 and shape[0] in (1, 3):
            image = {"height": shape[1], "width": shape[2], "channels": shape[0], "max_value": 255.0, "fit": 0.8}
        elif len(shape) == 1 and round(math.sqrt(size)) ** 2 == size:
            side = round(math.sqrt(size))
            image = {"height": side, "width": side, "channels": 1, "max_value": 255.0, "fit": 0.8}
    features = None
    if len(shape) == 1 and image is None:
        names = schema.get("feature_names")
        features = list(names) if names and len(names) == shape[0] else [f"x{i + 1}" for i in range(shape[0])]
    return none | {"image": image, "features": features}


def pipeline_version(version: Any) -> dict[str, Any]:
    """A voice pipeline version as the playground reads a model version: its spec, and an audio input
    hint at the speech-to-text stage's rate (the playground shows its microphone card)."""
    spec = version.spec
    rate = int(spec["stages"]["speech_to_text"].get("sample_rate", 16000))
    hints = {"image": None, "features": None, "text": None}
    audio = {"sample_rate": rate, "seconds": PIPELINE_SECONDS, "pipeline": True}
    return {
        "name": version.name,
        "version": version.version,
        "ref": version.ref,
        "kind": "pipeline",
        "spec": spec,
        "schema": {"task": "pipeline", "kind": "audio", "input_shape": [], "input_hints": hints | {"audio": audio}},
        "history": [],
        "confusion_matrix": None,
    }


def _summary_row(run: dict[str, Any]) -> dict[str, Any]:
    history = run.pop("history")
    run.pop("env", None)
    run["epochs"] = len(history)
    run["last_epoch"] = history[-1] if history else None
    return run


class Catalog:
    """Read-only views of the store at ``home`` for the control plane's catalog routes."""

    def __init__(self, home: Path, access: DataAccess | None = None) -> None:
        self.home = home
        # A computed confusion matrix reads the model's data from its stored spec: a request
        # may only make the server read what a job could (the server's data folders).
        self.access = access
        self._schemas: dict[str, dict[str, Any]] = {}
        self._confusion: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def runs(self, *, name: str | None = None, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, without spec and history (those come with one run)."""
        out = []
        for run in RunStore(self.home).list(name=name, status=status, limit=limit):
            row = _summary_row(run.to_dict())
            row["spec_name"] = row.pop("spec", {}).get("name")
            out.append(row)
        return out

    def run(self, run_id: str) -> dict[str, Any]:
        return RunStore(self.home).get(run_id).to_dict()

    def models(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every version (newest first), with test metrics but without the per-epoch history."""
        store = ModelStore(self.home)
        versions = store.versions(name) if name is not None else store.list()
        out = []
        for version in sorted(versions, key=lambda v: v.created_at, reverse=True):
            row = version.to_dict()
            row["metrics"] = {k: v for k, v in row["metrics"].items() if k != "history"}
            test = row["metrics"].get("test")
            if isinstance(test, dict):  # a copy: the matrix is for the version's own page
                row["metrics"]["test"] = {k: v for k, v in test.items() if k != "confusion_matrix"}
            out.append(row)
        return out

    def version(self, name: str, version: int) -> dict[str, Any]:
        """One version with its schema, input hints, training curve, lineage both ways and confusion matrix if known."""
        from modelyard.store.pipelines import PipelineStore

        pipelines = PipelineStore(self.home)
        if pipelines.exists(name) and name not in ModelStore(self.home).names():
            return pipeline_version(pipelines.get(f"{name}:{version}", field="version"))
        store = ModelStore(self.home)
        found = store.get(f"{name}:{version}")
        out = found.to_dict() | store.family(found)
        out["history"] = out["metrics"].get("history", [])
        out["schema"] = self.schema(found)
        out["confusion_matrix"] = self._stored_confusion(found) or self._confusion.get(found.ref)
        return out

    def schema(self, version: ModelVersion) -> dict[str, Any]:
        cached = self._schemas.get(version.ref)
        if cached is not None:
            return cached
        from modelyard.nn.layers.audio import input_sample_rate
        from modelyard.predict import Predictor

        model = Predictor.load(version.ref, home=self.home)
        schema = model.schema()
        schema["kind"] = model.meta.get("kind")
        rate = input_sample_rate(model.spec.model.layers)
        schema["input_hints"] = input_hints(schema, version.load_spec(), model.meta.get("kind"), sample_rate=rate)
        with self._lock:
            self._schemas[version.ref] = schema
        return schema

    def confusion(self, name: str, version: int) -> dict[str, Any]:
        """The confusion matrix of a classifier: stored, cached, or computed now (slow once)."""
        found = ModelStore(self.home).get(f"{name}:{version}")
        if found.task != "classification":
            raise InputError(
                f"Model {found.ref} is a {found.task} model: a confusion matrix needs a classifier", field="task"
            )
        stored = self._stored_confusion(found) or self._confusion.get(found.ref)
        if stored is not None:
            return stored
        computed = self._compute_confusion(found)
        with self._lock:
            self._confusion[found.ref] = computed
        return computed

    def _labels(self, version: ModelVersion, size: int) -> list[str]:
        meta = version.load_preprocess()
        names = meta.get("class_names")
        return [str(n) for n in names] if names and len(names) == size else [str(i) for i in range(size)]

    def _stored_confusion(self, version: ModelVersion) -> dict[str, Any] | None:
        test = version.metrics.get("test")
        matrix = test.get("confusion_matrix") if isinstance(test, dict) else None
        if not isinstance(matrix, list) or not matrix:
            return None
        return {
            "labels": self._labels(version, len(matrix)),
            "matrix": matrix,
            "split": test.get("split"),
            "source": "metrics.json",
        }

    def _compute_confusion(self, version: ModelVersion) -> dict[str, Any]:
        from modelyard.evaluation import own_split  # the split and drift check of `modelyard eval`
        from modelyard.metrics import METRICS
        from modelyard.predict import Predictor
        from modelyard.training import evaluate

        model = Predictor.load(version.ref, home=self.home)
        with confined(self.access):
            split_name, split = own_split(model)
        result = evaluate(
            model.network,
            split,
            metrics=[METRICS.parse("confusion_matrix", field="metrics")],
            loss=None,
            task=model.task,
            num_classes=model.meta.get("num_classes"),
        )
        matrix = [[int(v) for v in row] for row in result["confusion_matrix"]]
        return {
            "labels": self._labels(version, len(matrix)),
            "matrix": matrix,
            "split": split_name,
            "source": "computed",
        }
