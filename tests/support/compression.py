"""Shared pieces of the compression tests: tiny specs and a small trained digits model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modelyard

DENSE = {
    "input": [20],
    "layers": [
        {"dense": 16, "activation": "relu"},
        {"dense": 8, "activation": "relu"},
        {"dense": 3, "activation": "softmax"},
    ],
}
CONV = {
    "input": [1, 10, 10],
    "layers": [
        {"conv2d": 6, "kernel": 3, "activation": "relu"},
        {"maxpool2d": 2},
        {"conv2d": 8, "kernel": 3, "padding": "same", "activation": "relu"},
        "flatten",
        {"dense": 3, "activation": "softmax"},
    ],
}


def digits_spec(epochs: int = 4, hidden: tuple[int, ...] = (64, 32)) -> dict[str, Any]:
    """scikit-learn's 8x8 digits (bundled, 1797 samples): trains in about a second."""
    layers: list[Any] = [{"dense": h, "activation": "relu"} for h in hidden] + [{"dense": 10, "activation": "softmax"}]
    return {
        "name": "digits",
        "seed": 0,
        "data": {"source": "digits", "validation": 0.15, "test": 0.2, "preprocess": ["standardize"]},
        "model": {"input": [64], "layers": layers},
        "train": {"loss": "cross_entropy", "lr": 0.003, "batch_size": 64, "epochs": epochs, "metrics": ["accuracy"]},
    }


def student(hidden: int = 16, inputs: int = 64, classes: int = 10) -> dict[str, Any]:
    return {
        "model": {
            "input": [inputs],
            "layers": [{"dense": hidden, "activation": "relu"}, {"dense": classes, "activation": "softmax"}],
        }
    }


def train_digits(home: Path, **kwargs: Any) -> str:
    return modelyard.train(digits_spec(**kwargs), home=home, progress=False).model_ref
