"""Text end to end: CLINC150 → tokenize → embedding network → registered version → predictions on strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard import workflow
from modelyard.predict import Predictor
from modelyard.store import ModelStore
from tests.support.datasets import shared_dataset

tokenizers = pytest.importorskip("tokenizers")


def test_clinc150_trains_registers_and_predicts_from_strings(home: Path) -> None:
    folder = shared_dataset("clinc150")
    spec = {
        "name": "clinc-bag",
        "seed": 0,
        "data": {
            "source": {"clinc150": None, "path": str(folder)},
            "preprocess": [{"tokenize": None, "max_length": 20, "vocab_size": 4000}],
        },
        "model": {"input": [20], "layers": [{"embedding": 4000, "dim": 32}, "flatten", {"dense": 150}]},
        "train": {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.003,
            "batch_size": 64,
            "epochs": 3,
            "metrics": ["accuracy"],
        },
    }
    result = workflow.train(spec, home=home, progress=False)
    # A bag of positioned tokens reaches ~60% in 3 epochs (150 classes: chance is 0.7%).
    assert result.test_metrics["accuracy"] > 0.45, result.test_metrics

    predictor = Predictor.load(result.model_ref, home=home)
    published = json.loads((folder / "data_full.json").read_text())["test"][:64]
    texts = [t for t, _ in published]
    got = predictor.predict(texts)
    # Reference: the stored tokenizer read by the library itself, and the network called directly.
    version = ModelStore(home).get(result.model_ref)
    state = json.loads((Path(version.path) / "preprocess.json").read_text())
    step = state["pipeline"]["steps"][0]["state"]
    tok = tokenizers.Tokenizer.from_str(step["tokenizer"])
    tok.enable_truncation(max_length=20)
    tok.enable_padding(pad_id=step["pad_id"], length=20)
    ids = torch.tensor([e.ids for e in tok.encode_batch(texts)], dtype=torch.int64)
    with torch.inference_mode():
        want = predictor.network.probabilities(predictor.network(ids)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    labels = predictor.predict_labels(texts)
    assert np.mean([label == intent for label, (_, intent) in zip(labels, published)]) > 0.3
    assert predictor.predict_labels("what is my bank balance") == predictor.predict_labels(["what is my bank balance"])


def test_a_pooled_text_model_trains_on_batches_cut_to_their_longest_query(home: Path) -> None:
    folder = shared_dataset("clinc150")
    spec = {
        "name": "clinc-pool",
        "seed": 0,
        "data": {"source": {"clinc150": None, "path": str(folder)}, "preprocess": [{"tokenize": None, "max_length": 32, "vocab_size": 4000}]},
        "model": {"input": [32], "layers": [{"embedding": 4000, "dim": 64, "pad": 0}, {"token_pool": "mean"}, {"dense": 150}]},
        "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 0.005, "batch_size": 32, "epochs": 3, "group_by_length": True, "metrics": ["accuracy"]},
    }  # fmt: skip
    result = workflow.train(spec, home=home, progress=False)
    assert result.runtime["batching"] == "in-memory-index, cut to the longest sequence, grouped by length"
    # Mean-pooled embeddings (fastText-like) reach 88.3% here in 3 epochs; fastText in the
    # data set's paper: 89.0%. The bound fails when pooling sees the pads or batches lose tokens.
    assert result.test_metrics["accuracy"] > 0.8, result.test_metrics
    predictor = Predictor.load(result.model_ref, home=home)
    assert predictor.predict_labels(["what is the balance of my checking account"]) == ["balance"]
