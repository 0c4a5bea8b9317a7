"""evaluate: token batches cut to their longest real sequence give the padded batches' answers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from modelyard.components import ComponentSpec
from modelyard.training.evaluation import evaluate
from tests.support.sequences import build, padded_ids


def test_an_any_length_network_is_evaluated_on_batches_cut_to_their_longest_sequence() -> None:
    torch.manual_seed(0)
    net = build(
        [{"embedding": 20, "dim": 8, "pad": 0}, {"transformer": 1, "heads": 2}, "token_pool", {"dense": 3}], [16]
    )
    assert net.any_length
    ids = padded_ids([5, 3, 7, 2, 6, 4], 16, 20)
    split = SimpleNamespace(x=ids, y=torch.tensor([0, 1, 2, 0, 1, 2]))
    widths: list[int] = []
    net.layers[0].register_forward_hook(lambda module, args, out: widths.append(args[0].shape[1]))
    loss = ComponentSpec(type="cross_entropy", options={})
    got = evaluate(net, split, metrics=[], loss=loss, task="classification", num_classes=3, batch_size=4)
    assert widths == [7, 6]  # each batch of 4 (then 2) cut to its longest query, not the 16 padded
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(net.eval()(ids), split.y)
    assert got["loss"] == pytest.approx(float(want), rel=1e-5)
