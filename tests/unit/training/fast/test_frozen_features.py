"""A frozen encoder's pooled vectors computed once per split: the same training as the whole network each step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modelyard import fast_paths, workflow
from modelyard.store import ModelStore
from modelyard.training.fast.frozen_features import frozen_prefix
from tests.support.pretrained import tiny_bert
from tests.support.sequences import build
from tests.unit.nn.pretrained.test_pinning import spec_for, texts_file

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    tiny_bert(folder)
    return folder


def _weights(home: Path, ref: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(ModelStore(home).get(ref).path) / "weights.safetensors"))


@pytest.mark.parametrize("group_by_length", [False, True])
def test_training_the_head_on_cached_features_is_training_the_whole_network(
    base: Path, tmp_path: Path, group_by_length: bool
) -> None:
    data = texts_file(tmp_path, 120)
    spec = spec_for(base, data, "all", epochs=3)
    spec["model"]["layers"][2:] = [{"dense": 8, "activation": "relu"}, {"dropout": 0.2}, {"dense": 2}]
    spec["train"] |= {"group_by_length": group_by_length, "batch_size": 4}  # 23 batches: grouping reorders them
    fast = workflow.train(spec, home=tmp_path / "fast", progress=False)
    with fast_paths.disabled():
        plain = workflow.train(spec, home=tmp_path / "plain", progress=False)
    assert fast.runtime["frozen_features"] == "layers 0-1 computed once per split, features [16]"
    assert plain.runtime["frozen_features"] == "off"
    # Same sample order, same dropout draws: the same losses and head weights, up to float rounding
    # (the encoder saw each query in a batch of another shape).
    for mine, theirs in zip(fast.history, plain.history):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), key
    a, b = _weights(tmp_path / "fast", fast.model_ref), _weights(tmp_path / "plain", plain.model_ref)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    assert fast.test_metrics == pytest.approx(plain.test_metrics)


def test_only_a_frozen_deterministic_encoder_up_to_the_pooling_is_cached(base: Path) -> None:
    def net(freeze: object, *tail: object, dropout: float | None = None) -> torch.nn.Module:
        options = {"pretrained": str(base), "freeze": freeze} | ({"dropout": dropout} if dropout is not None else {})
        return build([options, "token_pool", *(tail or [{"dense": 2}])], [8])

    assert frozen_prefix(net("all")) == 2
    assert frozen_prefix(net("all", dropout=0.3)) == 2  # frozen groups run without dropout
    assert frozen_prefix(net("embeddings")) is None  # the blocks train
    assert frozen_prefix(net("blocks")) is None  # the embeddings train
    attention = build([{"pretrained": str(base), "freeze": "all"}, {"token_pool": "attention"}, {"dense": 2}], [8])
    assert frozen_prefix(attention) is None  # the attention pooling's scores train
    assert frozen_prefix(build([{"pretrained": str(base), "freeze": "all"}, "token_pool"], [8])) is None  # no head
