"""Pooling over tokens against a reference computed on each sequence's real tokens alone."""

from __future__ import annotations

import pytest
import torch

from modelyard.errors import ShapeError
from tests.support.sequences import build, padded_ids

LENGTHS = [6, 4, 1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def reference(mode: str, tokens: torch.Tensor, score: torch.nn.Linear | None) -> torch.Tensor:
    """``tokens`` [L, D]: one sequence's real tokens, no padding."""
    if mode == "mean":
        return tokens.mean(dim=0)
    if mode == "max":
        return tokens.max(dim=0).values
    if mode == "cls":
        return tokens[0]
    weights = torch.softmax(tokens @ score.weight[0] + score.bias, dim=0)
    return (weights[:, None] * tokens).sum(dim=0)


@pytest.mark.parametrize("mode", ["mean", "max", "cls", "attention"])
def test_pooling_matches_the_unpadded_reference_and_ignores_pads(mode: str) -> None:
    net = build([{"embedding": 20, "dim": 8, "pad": 0}, {"dense": 8, "activation": "tanh"}, {"token_pool": mode}], [6])
    assert net.output_shape == (8,)
    ids = padded_ids(LENGTHS, 6, 20)
    out = net(ids)
    tokens = net.layers[1](net.layers[0](ids))
    score = getattr(net.layers[2], "score", None)
    for row, length in enumerate(LENGTHS):
        torch.testing.assert_close(out[row], reference(mode, tokens[row, :length], score))
    # Other ids in the padded positions, the pad id itself left alone: same pooled vectors.
    other = ids.clone()
    other[ids == 0] = 7
    assert not torch.equal(other, ids)
    changed = net.layers[2](net.layers[1](net.layers[0](other)), ids != 0)
    torch.testing.assert_close(changed, out)


@pytest.mark.parametrize("mode", ["mean", "max", "attention"])
def test_without_a_pad_id_every_position_counts(mode: str) -> None:
    net = build([{"embedding": 20, "dim": 4}, {"token_pool": mode}], [5])
    ids = torch.randint(0, 20, (2, 5))
    tokens = net.layers[0](ids)
    score = getattr(net.layers[1], "score", None)
    for row in range(2):
        torch.testing.assert_close(net(ids)[row], reference(mode, tokens[row], score))


@pytest.mark.parametrize("mode", ["mean", "max", "attention"])
def test_a_sequence_of_pads_alone_pools_to_finite_values(mode: str) -> None:
    net = build([{"embedding": 20, "dim": 4, "pad": 0}, {"token_pool": mode}], [5])
    out = net(torch.zeros(2, 5, dtype=torch.int64))
    assert torch.isfinite(out).all()


def test_token_pool_needs_a_sequence() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"dense": 4}, {"token_pool": "mean"}], [3])
    assert info.value.field == "model.layers[1]"
    assert "(token_pool): expected a sequence [T, features] input, received shape [4]" in str(info.value)
