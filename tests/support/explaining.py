"""Tiny registered models for the explain tests, with weights the tests know (no training).

Holds no tests. The models are registered with the preprocessing ``prepare`` fits on their
own spec's data, so the explainers can re-create their training split as a background.

- ``lin``: regression y = w·standardize(x) + b on the synthetic ``linear`` source (4 features).
- ``one``: the same shape, but only feature x3 has a nonzero weight.
- ``digits``: an MLP 64 → 16 → 10 (softmax) on scikit-learn's digits, standardized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard.data import prepare
from modelyard.nn import build_model
from modelyard.spec import load_spec
from modelyard.store import ModelStore
from modelyard.workflow import model_meta

LIN_W = np.array([1.5, -2.0, 0.5, 3.0])
LIN_B = 0.25
ONE_W = np.array([0.0, 0.0, 4.0, 0.0])

_SPECS: dict[str, dict[str, Any]] = {
    "lin": {
        "data": {"source": {"linear": {"n": 300, "features": 4}}, "preprocess": ["standardize"]},
        "model": {"input": [4], "layers": [{"dense": 1}]},
        "train": {"loss": "mse"},
    },
    "digits": {
        "data": {"source": "digits", "preprocess": ["standardize"]},
        "model": {
            "input": [64],
            "layers": [{"dense": 16, "activation": "tanh"}, {"dense": 10, "activation": "softmax"}],
        },
        "train": {"loss": "cross_entropy"},
    },
}


def register(name: str, home: Path, *, seed: int = 0) -> str:
    """Register model ``name`` (lin, one or digits) in ``home``; returns its ref."""
    body = _SPECS["lin" if name == "one" else name]
    spec = load_spec({"name": name, "seed": seed, **body})
    torch.manual_seed(seed)
    network = build_model(spec.model, loss=spec.train.loss.type)
    if name in ("lin", "one"):
        with torch.no_grad():
            layer = network.layers[0]
            weight = next(p for n, p in layer.named_parameters() if n.endswith("weight"))
            bias = next(p for n, p in layer.named_parameters() if n.endswith("bias"))
            weight.copy_(torch.tensor(np.array([LIN_W if name == "lin" else ONE_W]), dtype=torch.float32))
            bias.fill_(LIN_B)
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed)
    version = ModelStore(home).register(
        spec.name,
        state_dict=network.state_dict(),
        spec=spec.to_dict(),
        preprocess=model_meta(prepared, spec),
        metrics={},
    )
    return version.ref


def standardizer(ref: str, home: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the fitted standardize step: the reference math needs them."""
    from modelyard.predict import Predictor

    p = Predictor.load(ref, home=home)
    zero = p.pipeline.transform_x(np.zeros((1, 4), dtype=np.float32))[0]
    one = p.pipeline.transform_x(np.ones((1, 4), dtype=np.float32))[0]
    std = 1.0 / (one - zero)  # z = (x - mean) / std
    return -zero * std, std


def training_rows(ref: str, home: Path, size: int) -> np.ndarray:
    """The documented default background: the first ``size`` rows of a permutation of the
    training split, seeded with the spec's seed, in model-input form."""
    from modelyard.predict import Predictor

    p = Predictor.load(ref, home=home)
    train = prepare(p.spec.data, task=p.spec.task, seed=p.spec.seed).train.x.double().numpy()
    return train[np.random.default_rng(p.spec.seed).permutation(len(train))[:size]]


def int8_digits(home: Path) -> tuple[str, str]:
    """The ``digits`` MLP and its int8 version (``compress --quantize int8``): (float ref, int8 ref)."""
    import modelyard

    parent = register("digits", home)
    return parent, modelyard.compress(parent, quantize="int8", home=home).model_ref


def dequantized_by_hand(ref: str, home: Path) -> Any:
    """Reference for an int8 dense version: its Predictor with a float network built from the spec, each
    dense layer given the int8 layer's ``weight().dequantize()`` and ``bias()``, in layer order."""
    import dataclasses

    from torch import nn

    from modelyard.predict import Predictor

    p = Predictor.load(ref, home=home)
    network = build_model(p.spec.model, loss=p.spec.train.loss.type).eval()
    floats = [m for m in network.modules() if isinstance(m, nn.Linear)]
    int8s = [
        m for m in p.network.modules() if "quantized" in type(m).__module__ and callable(getattr(m, "weight", None))
    ]
    assert len(floats) == len(int8s) > 0
    with torch.no_grad():
        for f, q in zip(floats, int8s, strict=True):
            f.weight.copy_(q.weight().dequantize())
            f.bias.copy_(q.bias())
    return dataclasses.replace(p, network=network)


def int8_reference(ref: str, home: Path, rows: np.ndarray, steps: int) -> tuple[list[int], np.ndarray]:
    """(the int8 model's predicted classes, integrated gradients of ``dequantized_by_hand`` for those classes)."""
    from modelyard.explaining import explain
    from modelyard.predict import Predictor

    int8 = Predictor.load(ref, home=home)
    targets = [int(t) for t in int8.predict_tensor(int8.preprocess(rows)).argmax(1)]
    twin = dequantized_by_hand(ref, home)
    values = [
        explain(twin, row[None], target=t, steps=steps).attributions[0] for row, t in zip(rows, targets, strict=True)
    ]
    return targets, np.stack(values)
