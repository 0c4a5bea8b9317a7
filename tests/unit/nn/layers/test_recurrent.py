"""LSTM and GRU layers against nn.LSTM / nn.GRU with copied weights, run on each unpadded sequence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelyard.errors import ShapeError, SpecError
from modelyard.nn.layers.recurrent import Recurrent
from modelyard.spec import ModelSpec
from tests.support.sequences import build, padded_ids

LENGTHS = [7, 3, 1]
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def reference(layer: Recurrent, kind: str) -> nn.Module:
    rnn = layer.rnn
    ref = CELLS[kind](
        rnn.input_size, rnn.hidden_size, num_layers=rnn.num_layers, bidirectional=rnn.bidirectional, batch_first=True
    )
    ref.load_state_dict(rnn.state_dict())
    return ref


def last_state(ref: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last layer's final hidden state, directions side by side, for one sequence ``[1, L, F]``."""
    _, state = ref(x)
    hidden = state[0] if isinstance(state, tuple) else state
    dirs = 2 if ref.bidirectional else 1
    return hidden[-dirs:, 0].reshape(-1)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_last_state_on_padded_ids_matches_each_sequence_alone(kind: str, bidirectional: bool, layers: int) -> None:
    net = build(
        [{"embedding": 20, "dim": 5, "pad": 0}, {kind: 4, "bidirectional": bidirectional, "layers": layers}], [7]
    )
    dirs = 2 if bidirectional else 1
    assert net.output_shape == (4 * dirs,)
    ids = padded_ids(LENGTHS, 7, 20)
    out = net(ids)
    ref = reference(net.layers[1], kind)
    vectors = net.layers[0](ids)
    for row, length in enumerate(LENGTHS):
        torch.testing.assert_close(out[row], last_state(ref, vectors[row : row + 1, :length]))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_output_matches_each_sequence_alone_with_zeros_after_it(kind: str, bidirectional: bool) -> None:
    net = build(
        [{"embedding": 20, "dim": 5, "pad": 0}, {kind: 3, "bidirectional": bidirectional, "output": "sequence"}], [7]
    )
    width = 3 * (2 if bidirectional else 1)
    assert net.output_shape == (7, width)
    ids = padded_ids(LENGTHS, 7, 20)
    out = net(ids)
    ref = reference(net.layers[1], kind)
    vectors = net.layers[0](ids)
    for row, length in enumerate(LENGTHS):
        torch.testing.assert_close(out[row, :length], ref(vectors[row : row + 1, :length])[0][0])
        assert torch.count_nonzero(out[row, length:]) == 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_audio_frames_run_through_the_whole_sequence(kind: str) -> None:
    net = build([{kind: 6, "bidirectional": True, "output": "sequence"}, {kind: 4}], [9, 13])
    assert net.input_dtype == torch.float32 and net.output_shape == (4,)
    x = torch.randn(2, 9, 13)
    first, second = reference(net.layers[0], kind), reference(net.layers[1], kind)
    frames = first(x)[0]
    torch.testing.assert_close(net.layers[0](x), frames)
    for row in range(2):
        torch.testing.assert_close(net(x)[row], last_state(second, frames[row : row + 1]))


def test_stacked_dropout_needs_two_layers() -> None:
    net = build([{"lstm": 4, "layers": 2, "dropout": 0.3}], [5, 3])
    assert net.layers[0].rnn.dropout == 0.3
    with pytest.raises(SpecError) as info:
        ModelSpec.model_validate({"input": [5, 3], "layers": [{"gru": 4, "dropout": 0.3}]})
    assert info.value.field == "model.layers[0]" and "expected layers >= 2 for dropout" in str(info.value)


def test_recurrent_layers_need_a_sequence() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"lstm": 4}], [12])
    assert info.value.field == "model.layers[0]"
    assert "(lstm): expected a sequence [T, features] input, received shape [12]" in str(info.value)
    with pytest.raises(ShapeError, match=r"model\.layers\[2\]` \(gru\).*received shape \[4\]; .*output: sequence"):
        build([{"embedding": 9, "dim": 3}, {"gru": 4}, {"gru": 2}], [5])
