"""The transformer encoder against nn.TransformerEncoderLayer with copied weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelyard.errors import ShapeError
from modelyard.nn.layers.transformer import EncoderBlock, TransformerEncoder
from tests.support.sequences import as_multihead, build, mask_of, padded_ids


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def as_torch_layer(block: EncoderBlock, activation: str, eps: float, bias: bool) -> nn.TransformerEncoderLayer:
    dim, hidden = block.mlp_in.in_features, block.mlp_in.out_features
    ref = nn.TransformerEncoderLayer(
        dim,
        block.attention.heads,
        dim_feedforward=hidden,
        dropout=0.0,
        activation=activation,
        layer_norm_eps=eps,
        batch_first=True,
        norm_first=block.pre_norm,
        bias=bias,
    )
    ref.self_attn.load_state_dict(as_multihead(block.attention).state_dict())
    for mine, theirs in (
        (block.mlp_in, ref.linear1),
        (block.mlp_out, ref.linear2),
        (block.attention_norm, ref.norm1),
        (block.mlp_norm, ref.norm2),
    ):
        theirs.load_state_dict(mine.state_dict())
    return ref


@pytest.mark.parametrize(
    ("options", "activation"),
    [
        ({"norm": "post"}, "gelu"),
        ({"norm": "pre"}, "gelu"),
        ({"norm": "post", "activation": "relu", "eps": 1e-12, "mlp": 24}, "relu"),
        ({"norm": "pre", "bias": False}, "gelu"),
    ],
)
def test_blocks_match_torch_encoder_layers(options: dict, activation: str) -> None:
    encoder = build([{"transformer": 2, "heads": 4, "dropout": 0.0, **options}], [6, 16]).layers[0]
    assert isinstance(encoder, TransformerEncoder) and len(encoder.blocks) == 2
    refs = [as_torch_layer(b, activation, options.get("eps", 1e-5), options.get("bias", True)) for b in encoder.blocks]
    x = torch.randn(3, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4, [True] * 5 + [False]])
    want, want_masked = x, x
    for ref in refs:  # train mode (dropout is 0): torch's reference path, not its fused inference kernel
        want = ref(want)
        want_masked = ref(want_masked, src_key_padding_mask=~mask)
    torch.testing.assert_close(encoder(x), want)
    torch.testing.assert_close(encoder(x, mask), want_masked)


def test_padding_changes_nothing_for_the_real_tokens() -> None:
    net = build(
        [{"embedding": 30, "dim": 16, "pad": 0}, "position_embedding", {"transformer": 2, "heads": 2, "dropout": 0.0}],
        [8],
    ).eval()
    ids = padded_ids([8, 5, 2], 8, 30)
    out = net(ids)
    for row, length in enumerate([8, 5, 2]):
        # The same network on the sequence alone, cut to its length: no pads anywhere.
        alone = net.layers[2](net.layers[1](net.layers[0](ids[row : row + 1, :length])))
        torch.testing.assert_close(out[row, :length], alone[0])


def test_mlp_defaults_to_four_times_the_features_and_dropout_reaches_every_site() -> None:
    encoder = build([{"transformer": {"heads": 2, "dropout": 0.2, "attention_dropout": 0.05}}], [4, 8]).layers[0]
    (block,) = encoder.blocks
    assert block.mlp_in.out_features == 32 and block.mlp_out.out_features == 8
    assert block.dropout.p == 0.2 and block.attention.dropout == 0.05
    x = torch.randn(2, 4, 8)
    encoder.eval()
    torch.testing.assert_close(encoder(x), encoder(x))
    encoder.train()
    assert not torch.allclose(encoder(x), encoder(x))


def test_transformer_shape_errors_name_the_layer() -> None:
    with pytest.raises(ShapeError, match=r"model\.layers\[1\].*\(transformer\).*divisible by heads \(3\).*\[5, 8\]"):
        build([{"embedding": 10, "dim": 8}, {"transformer": 1, "heads": 3}], [5])
    with pytest.raises(
        ShapeError, match=r"model\.layers\[0\].*\(transformer\).*\[T, features\].*received shape \[2, 3, 4\]"
    ):
        build([{"transformer": 1, "heads": 2}], [2, 3, 4])


def test_network_with_a_transformer_passes_the_mask_and_the_reference_agrees() -> None:
    net = build([{"embedding": 12, "dim": 8, "pad": 0}, {"transformer": 1, "heads": 2, "dropout": 0.0}], [5])
    ids = padded_ids([5, 3], 5, 12)
    ref = as_torch_layer(net.layers[1].blocks[0], "gelu", 1e-5, True)
    want = ref(net.layers[0](ids), src_key_padding_mask=~mask_of(ids))
    got = net(ids)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1, :3], want[1, :3])


def test_bert_layers_map_one_to_one_onto_a_spec() -> None:
    # The claim behind building blocks from plain linear layers: a BERT-style checkpoint's
    # weights load into embedding + position_embedding + layernorm + transformer unchanged
    # (the token-type vector of single-sentence input folds into the position table).
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=12,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    net = build(
        [
            {"embedding": 30, "dim": 16, "pad": 0},
            {"position_embedding": "learned", "max_length": 12},
            {"layernorm": {"eps": 1e-12}},
            {"transformer": 2, "heads": 2, "mlp": 32, "eps": 1e-12, "dropout": 0.0},
        ],
        [9],
    ).eval()
    emb, positions, norm, encoder = net.layers
    theirs = bert.embeddings
    with torch.no_grad():
        emb.weight.copy_(theirs.word_embeddings.weight)
        positions.weight.copy_(theirs.position_embeddings.weight + theirs.token_type_embeddings.weight[0])
    norm.load_state_dict(theirs.LayerNorm.state_dict())
    for block, layer in zip(encoder.blocks, bert.encoder.layer):
        attention = layer.attention
        for mine, source in (
            (block.attention.query, attention.self.query),
            (block.attention.key, attention.self.key),
            (block.attention.value, attention.self.value),
            (block.attention.output, attention.output.dense),
            (block.attention_norm, attention.output.LayerNorm),
            (block.mlp_in, layer.intermediate.dense),
            (block.mlp_out, layer.output.dense),
            (block.mlp_norm, layer.output.LayerNorm),
        ):
            mine.load_state_dict(source.state_dict())
    ids = padded_ids([9, 6, 2], 9, 30)
    with torch.no_grad():
        want = bert(input_ids=ids, attention_mask=mask_of(ids).long()).last_hidden_state
        got = net(ids)
    for row, length in enumerate([9, 6, 2]):
        torch.testing.assert_close(got[row, :length], want[row, :length], rtol=1e-4, atol=1e-5)
