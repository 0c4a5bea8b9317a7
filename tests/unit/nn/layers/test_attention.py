"""The attention layer against nn.MultiheadAttention with copied weights, and padded keys ignored."""

from __future__ import annotations

import pytest
import torch

from modelyard.errors import ShapeError, SpecError
from modelyard.spec import ModelSpec
from tests.support.sequences import as_multihead, build, mask_of, padded_ids


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(("heads", "bias"), [(1, True), (4, True), (2, False)])
def test_attention_matches_multihead_attention(heads: int, bias: bool) -> None:
    layer = build([{"attention": heads, "bias": bias}], [6, 16]).layers[0]
    ref = as_multihead(layer)
    x = torch.randn(3, 6, 16)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] + [False] * 5])
    torch.testing.assert_close(layer(x), ref(x, x, x, need_weights=False)[0])
    want = ref(x, x, x, key_padding_mask=~mask, need_weights=False)[0]
    torch.testing.assert_close(layer(x, mask), want)


def test_padded_keys_get_no_attention() -> None:
    layer = build([{"attention": 2}], [7, 8]).layers[0]
    x = torch.randn(2, 7, 8)
    mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    out = layer(x, mask)
    # The first sequence alone (its 4 real tokens, no padding at all) gives the same vectors.
    torch.testing.assert_close(out[0, :4], layer(x[:1, :4])[0])
    changed = x.clone()
    changed[0, 4:] = torch.randn(3, 8) * 100
    torch.testing.assert_close(layer(changed, mask)[0, :4], out[0, :4])


def test_a_sequence_of_pads_alone_stays_finite() -> None:
    layer = build([{"attention": 2}], [5, 8]).layers[0]
    out = layer(torch.randn(2, 5, 8), torch.tensor([[False] * 5, [True] * 5]))
    assert torch.isfinite(out).all()


def test_attention_in_a_network_gets_the_mask_from_the_pad_id() -> None:
    net = build([{"embedding": 20, "dim": 8, "pad": 0}, {"attention": 2}], [6])
    ids = padded_ids([6, 3], 6, 20)
    emb, att = net.layers
    torch.testing.assert_close(net(ids), att(emb(ids), mask_of(ids)))
    assert not torch.allclose(net(ids)[1, :3], att(emb(ids))[1, :3])  # without the mask pads would count


def test_heads_must_divide_the_features() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"embedding": 10, "dim": 6}, {"attention": 4}], [5])
    assert info.value.field == "model.layers[1]"
    assert "divisible by heads (4)" in str(info.value) and "received shape [5, 6]" in str(info.value)


def test_attention_needs_a_sequence() -> None:
    with pytest.raises(ShapeError, match=r"model\.layers\[1\].*\(attention\).*\[T, features\].*received shape \[8\]"):
        build([{"dense": 8}, {"attention": 2}], [4])


def test_heads_is_required_and_dropout_is_an_option() -> None:
    with pytest.raises(SpecError) as info:
        ModelSpec.model_validate({"input": [4, 4], "layers": ["attention"]})
    assert info.value.field == "model.layers[0].heads"
    spec = ModelSpec.model_validate({"input": [4, 4], "layers": [{"self_attention": 2, "dropout": 0.1}]})
    assert spec.layers[0].type == "attention" and spec.layers[0].options["dropout"] == 0.1
