"""A spec that starts from a pretrained base: trained, registered with the base's identity, rebuilt offline."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelyard import workflow
from modelyard.cards import model_card
from modelyard.errors import SpecError
from modelyard.nn.pretrained.folder import sha256_of
from modelyard.predict import Predictor
from modelyard.store import ModelStore, RunStore
from tests.support.pretrained import WORDS, tiny_bert

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


def texts_file(folder: Path, n: int = 96) -> Path:
    """Sentences of random words; the label says whether 'cat' or 'dog' is in them."""
    rng = random.Random(0)
    others = [w for w in WORDS if w not in ("cat", "dog")]
    rows = []
    for i in range(n):
        animal = "cat" if i % 2 else "dog"
        words = rng.sample(others, rng.randint(1, 6)) + [animal]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": animal})
    path = folder / "texts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def spec_for(base: Path, data: Path, freeze: Any, *, epochs: int = 2) -> dict[str, Any]:
    return {
        "name": "tiny-text",
        "seed": 0,
        "data": {
            "source": {"jsonl": str(data), "target": "label", "text": "text"},
            "preprocess": [{"tokenize": str(base), "max_length": 12}],
            "validation": 0.25,
        },
        "model": {"input": [12], "layers": [{"pretrained": str(base), "freeze": freeze}, "token_pool", {"dense": 2}]},
        "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 16, "epochs": epochs, "metrics": ["accuracy"]},
    }


@pytest.fixture
def base(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    tiny_bert(folder)
    return folder


def test_frozen_weights_stay_bit_identical_and_the_version_rebuilds_without_its_base(
    home: Path, base: Path, tmp_path: Path
) -> None:
    result = workflow.train(
        spec_for(base, texts_file(tmp_path), ["embeddings", "blocks[0]"]), home=home, progress=False
    )
    version = ModelStore(home).get(result.model_ref)
    pinned = version.load_spec()["model"]["layers"][0]["options"]["base"]
    assert pinned["name"] == "tiny-bert" and pinned["sha256"] == sha256_of(base / "model.safetensors")
    assert pinned["config"]["num_hidden_layers"] == 2
    assert version.lineage["bases"] == [
        {"field": "model.layers[0]", "source": str(base), "name": "tiny-bert", "sha256": pinned["sha256"]}
    ]
    assert f"starts from the pretrained base tiny-bert (model.safetensors sha256 {pinned['sha256']})" in model_card(
        home, result.model_ref
    )
    stored = load_file(str(Path(version.path) / "weights.safetensors"))
    source = load_file(str(base / "model.safetensors"))
    assert torch.equal(stored["layers.0.embedding.weight"], source["embeddings.word_embeddings.weight"])
    for name in ("attention.query.weight", "mlp_out.bias", "mlp_norm.weight"):  # frozen block 0: untouched
        theirs = name.replace("attention.query", "attention.self.query").replace("mlp_out", "output.dense")
        theirs = theirs.replace("mlp_norm", "output.LayerNorm")
        assert torch.equal(stored[f"layers.0.encoder.blocks.0.{name}"], source[f"encoder.layer.0.{theirs}"])
    # Block 1 trained: its weights moved off the base's.
    assert not torch.equal(
        stored["layers.0.encoder.blocks.1.mlp_out.weight"], source["encoder.layer.1.output.dense.weight"]
    )

    queries = ["the cat sat on a mat", "a big dog ran", "what is my pin"]
    before = Predictor.load(result.model_ref, home=home).predict(queries)
    shutil.move(base, tmp_path / "moved-away")  # the base is gone: the version has all it needs
    again = Predictor.load(result.model_ref, home=home)
    np.testing.assert_array_equal(again.predict(queries), before)
    assert again.predict_labels(["the cat"]) == again.predict_labels("the cat")


def test_a_frozen_encoder_with_a_trained_head_learns_the_task(home: Path, base: Path, tmp_path: Path) -> None:
    result = workflow.train(spec_for(base, texts_file(tmp_path, 160), "all", epochs=30), home=home, progress=False)
    stored = load_file(str(Path(ModelStore(home).get(result.model_ref).path) / "weights.safetensors"))
    source = load_file(str(base / "model.safetensors"))
    assert torch.equal(
        stored["layers.0.encoder.blocks.1.mlp_out.weight"], source["encoder.layer.1.output.dense.weight"]
    )
    # A random encoder's mean-pooled tokens still carry 'cat' vs 'dog': a linear head separates them.
    assert result.test_metrics["accuracy"] >= 0.8, result.test_metrics


def test_a_pickle_only_base_stores_nothing(home: Path, base: Path, tmp_path: Path) -> None:
    (base / "model.safetensors").unlink()
    (base / "pytorch_model.bin").write_bytes(b"never read")
    with pytest.raises(SpecError, match=r"`model\.layers\[0\]\.source`: .*pytorch_model\.bin \(pickle"):
        workflow.train(spec_for(base, texts_file(tmp_path), "all"), home=home, progress=False)
    assert ModelStore(home).list() == [] and RunStore(home).list() == []  # refused before the run was created
