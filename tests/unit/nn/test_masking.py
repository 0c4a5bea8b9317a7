"""Where the padding mask travels (modelyard.nn.masking) and how a Network passes it."""

from __future__ import annotations

import pytest
import torch

from modelyard.errors import SpecError
from modelyard.spec import ModelSpec
from tests.support.sequences import build, mask_of, padded_ids

EMBED = {"embedding": 20, "dim": 8, "pad": 0}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(
    ("layers", "plan"),
    [
        # dense, dropout, layernorm, activations and positions keep it; pooling consumes it.
        (
            [EMBED, "position_embedding", {"dense": 8, "activation": "gelu"}, "dropout", "layernorm", "relu",
             {"attention": 2}, {"token_pool": "mean"}, {"dense": 2}],
            (False, False, False, False, False, False, True, True, False),
        ),
        # A returned sequence keeps it; a last state consumes it.
        ([EMBED, {"lstm": 4, "output": "sequence"}, {"gru": 4}, {"dense": 2}], (False, True, True, False)),
        ([EMBED, {"lstm": 4}, {"dense": 2}], (False, True, False)),
        # Layers that change or mix the token axis end it: later layers see every position.
        ([EMBED, "flatten", {"reshape": [4, 10]}, {"token_pool": "mean"}], ()),
        ([EMBED, "softmax", {"token_pool": "mean"}], ()),
        ([EMBED, {"dense": 8, "activation": "softmax"}, {"token_pool": "mean"}], ()),
    ],
)  # fmt: skip
def test_the_mask_reaches_the_layers_that_still_see_the_tokens(layers: list, plan: tuple) -> None:
    net = build(layers, [5])
    assert net.pad_id == 0 and net.takes_mask == plan
    assert net.plain_chain == (not plan)


def test_no_pad_id_means_a_plain_chain_of_layers() -> None:
    net = build([{"embedding": 20, "dim": 8}, {"transformer": 1, "heads": 2}, {"token_pool": "mean"}], [5]).eval()
    assert net.pad_id is None and net.takes_mask == () and net.plain_chain
    ids = padded_ids([5, 2], 5, 20)
    torch.testing.assert_close(net(ids), net.layers(ids))


def test_forward_computes_the_mask_once_from_the_ids() -> None:
    net = build([EMBED, {"transformer": 1, "heads": 2, "dropout": 0.0}, {"token_pool": "max"}, {"dense": 3}], [6])
    ids = padded_ids([6, 4, 2], 6, 20)
    emb, encoder, pool, head = net.layers
    mask = mask_of(ids)
    torch.testing.assert_close(net(ids), head(pool(encoder(emb(ids), mask), mask)))
    # Without the mask the padded rows would pool differently.
    assert not torch.allclose(net(ids)[1:], head(pool(encoder(emb(ids))))[1:])


def test_the_pad_vector_is_zero_even_with_an_init() -> None:
    net = build([{"embedding": 10, "dim": 4, "pad": 3, "init": {"uniform": 0.5}}], [2])
    weight = net.layers[0].weight
    assert net.pad_id == 3 and torch.count_nonzero(weight[3]) == 0 and torch.count_nonzero(weight[2]) == 4


def test_the_pad_id_must_be_in_the_vocabulary() -> None:
    with pytest.raises(SpecError) as info:
        ModelSpec.model_validate({"input": [4], "layers": [{"embedding": 10, "dim": 4, "pad": 10}]})
    assert info.value.field == "model.layers[0]"
    assert "expected pad to be a token id below vocab (10), received pad 10" in str(info.value)


@pytest.mark.parametrize(
    "layers",
    [
        [EMBED, "position_embedding", {"transformer": 2, "heads": 2}, {"token_pool": "attention"}, {"dense": 3}],
        [EMBED, {"gru": 4, "bidirectional": True, "output": "sequence"}, {"lstm": 3}, {"dense": 3}],
    ],
    ids=["transformer", "recurrent"],
)
def test_a_batch_padded_to_its_longest_sequence_predicts_as_one_padded_to_the_input_length(layers: list) -> None:
    # What batches padded per batch (not to model.input) rely on: fewer trailing pads, same outputs.
    net = build(layers, [10]).eval()
    ids = padded_ids([6, 3, 1], 10, 20)
    torch.testing.assert_close(net(ids[:, :6]), net(ids))


@pytest.mark.parametrize(
    ("layers", "any_length"),
    [
        ([EMBED, "position_embedding", {"transformer": 1, "heads": 2}, {"token_pool": "mean"}, {"dense": 2}], True),
        ([EMBED, {"lstm": 4}, {"dense": 2}], True),
        ([EMBED, {"lstm": 4, "output": "sequence"}, {"gru": 4}, {"dense": 2}], True),
        # The number of positions matters: flatten, a sequence output, no pad id.
        ([EMBED, "flatten", {"dense": 2}], False),
        ([EMBED, {"lstm": 4, "output": "sequence"}, {"dense": 2}], False),
        ([{"embedding": 20, "dim": 8}, {"token_pool": "mean"}, {"dense": 2}], False),
    ],
)  # fmt: skip
def test_a_network_takes_any_length_when_pooling_uses_the_mask_up(layers: list, any_length: bool) -> None:
    net = build(layers, [5])
    assert net.any_length is any_length
