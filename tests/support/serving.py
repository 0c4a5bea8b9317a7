"""Tiny registered models for the server tests (no training: random weights, fitted pipelines).

Imported by the tests in tests/unit/serving; holds no tests itself. Four models can go into the
test's store: ``clf`` (tabular [4] → 3 named classes, standardized), ``img`` (8x8 grayscale
images [1, 8, 8] → CNN → 3 classes, scaled by 255), ``reg`` (regression [3] → 2 values) and
``xor`` (the shape of examples/xor.yaml: [2] → 1 value); and ``wav`` (raw 8 kHz audio [800], 0.1 s →
a logmel layer → CNN → 3 classes).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.components import ComponentSpec
from modelyard.data import Pipeline
from modelyard.nn import build_model
from modelyard.spec import load_spec
from modelyard.store import ModelStore
from modelyard.version_summary import summarize

API_KEY = "test-key-0123456789abcdef"

_SPECS: dict[str, dict[str, Any]] = {
    "clf": {
        "model": {"input": [4], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 3, "activation": "softmax"}]},
        "train": {"loss": "cross_entropy"},
    },
    "img": {
        "model": {
            "input": [1, 8, 8],
            "layers": [
                {"conv2d": 4, "kernel": 3, "padding": "same", "activation": "relu"},
                {"maxpool2d": 2},
                "flatten",
                {"dense": 3, "activation": "softmax"},
            ],
        },
        "train": {"loss": "cross_entropy"},
    },
    "reg": {
        "model": {"input": [3], "layers": [{"dense": 5, "activation": "tanh"}, {"dense": 2}]},
        "train": {"loss": "mse"},
    },
    "wav": {
        "model": {
            "input": [800],
            "layers": [
                {"logmel": {"sample_rate": 8000, "n_fft": 64, "hop_length": 16, "n_mels": 8}},
                {"conv2d": 4, "kernel": 3, "activation": "relu"},
                "global_avg_pool",
                {"dense": 3, "activation": "softmax"},
            ],
        },
        "train": {"loss": "cross_entropy"},
    },
    "xor": {
        "model": {"input": [2], "layers": [{"dense": 4, "activation": "tanh"}, {"dense": 1, "activation": "tanh"}]},
        "train": {"loss": "mse"},
    },
}
_RAW = {"clf": (4,), "img": (1, 8, 8), "reg": (3,), "xor": (2,), "wav": (800,)}
_STEPS = {
    "clf": ComponentSpec(type="standardize", options={}),
    "img": ComponentSpec(type="scale", options={"factor": 255.0}),
    "reg": ComponentSpec(type="standardize", options={}),
    "xor": ComponentSpec(type="scale", options={"factor": 1.0}),
    "wav": ComponentSpec(type="scale", options={"factor": 1.0}),
}
CLASS_NAMES = {"clf": ["setosa", "versicolor", "virginica"], "img": ["zero", "one", "two"], "wav": ["yes", "no", "up"]}
_KINDS = {"img": "image", "wav": "audio"}


def register(
    name: str,
    home: Path,
    *,
    seed: int = 0,
    as_name: str | None = None,
    lineage: dict[str, Any] | None = None,
    summary: bool = True,
) -> str:
    """Register one of the tiny models (a new version each call; ``lineage`` marks a derived one); returns its ref.

    ``summary=False`` registers it as a version from before ``summary.json`` existed.
    """
    torch.manual_seed(seed)
    spec = load_spec({"name": as_name or name, "seed": seed, "data": {"source": "xor"}, **_SPECS[name]})
    network = build_model(spec.model, loss=spec.train.loss.type)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(32, *_RAW[name])).astype(np.float32)
    kind = _KINDS.get(name, "tabular")
    classes = CLASS_NAMES.get(name)
    pipeline = Pipeline.fit(
        [_STEPS[name]], x, task=spec.task, kind=kind, num_classes=len(classes) if classes else None, class_names=classes
    )
    meta = {
        "pipeline": pipeline.state_dict(),
        "task": spec.task,
        "num_classes": len(classes) if classes else None,
        "class_names": classes,
        "feature_names": None,
        "kind": kind,
    }
    version = ModelStore(home).register(
        spec.name,
        state_dict=network.state_dict(),
        spec=spec.to_dict(),
        preprocess=meta,
        metrics={},
        lineage=lineage,
        summary=summarize(network, spec, meta, pipeline.raw_input_shape) if summary else None,
    )
    return version.ref


def instances(name: str, n: int, seed: int = 1) -> list[Any]:
    """Raw JSON-ready instances for a tiny model."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, *_RAW[name])).round(3).tolist()


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(out, format=fmt)
    return out.getvalue()


@contextlib.asynccontextmanager
async def client(app: Any, *, headers: dict[str, str] | None = None) -> Any:
    """An httpx client on the app in-process, with the app's lifespan (warm-up, drain) running."""
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", headers=headers) as http:
            yield http


def assert_same_predictions(got: list[dict[str, Any]], want: list[dict[str, Any]], atol: float = 1e-6) -> None:
    """Same labels and numbers up to float32 rounding.

    A row's result may differ in the last bit when it is computed inside a larger batch or
    with another torch thread count (a different summation order in the matrix kernels);
    labels and values agree to ~1e-7. Exact equality is asserted where the batch is the same.
    """
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        assert g.get("label") == w.get("label")
        key = "probabilities" if "probabilities" in w else "value"
        np.testing.assert_allclose(g[key], w[key], rtol=0, atol=atol)
