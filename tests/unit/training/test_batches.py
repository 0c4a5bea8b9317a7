"""In-memory batches of token ids: cut to each batch's longest sequence, optionally grouped by length."""

from __future__ import annotations

import torch

from modelyard.components import ComponentSpec
from modelyard.training.batches import GROUP_BATCHES, InMemoryBatches
from modelyard.training.losses import LOSSES
from tests.support.sequences import PAD, build, padded_ids

LAYERS = [
    {"embedding": 50, "dim": 8, "pad": PAD},
    "position_embedding",
    {"transformer": 1, "heads": 2, "mlp": 16, "dropout": 0.0},
    {"token_pool": "mean"},
    {"dense": 3},
]


def _batches(x: torch.Tensor, *, pad: int | None = PAD, group: bool = False, seed: int = 0, size: int = 16):
    y = torch.arange(len(x)) % 3
    return InMemoryBatches(
        x, y, batch_size=size, shuffle=True, generator=torch.Generator().manual_seed(seed),
        device=torch.device("cpu"), pad_id=pad, group_by_length=group,
    )  # fmt: skip


def _rows(lengths: list[int], total: int = 24) -> torch.Tensor:
    return padded_ids(lengths, total, 50, seed=1)


def test_each_batch_is_cut_to_its_longest_sequence_and_loses_no_token() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 25, (200,), generator=gen).tolist()
    x = _rows(lengths)
    seen = []
    for batch, _ in _batches(x):
        real = batch != PAD
        assert real[:, -1].any(), "the last column holds some real token"
        seen.append(torch.nn.functional.pad(batch, (0, x.shape[1] - batch.shape[1]), value=PAD))
    got = torch.cat(seen)
    # The same rows as the data set, once each (in the epoch's order).
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, x.tolist()))


def test_without_a_pad_id_batches_keep_the_full_width() -> None:
    x = _rows([3] * 40)
    assert {b.shape[1] for b, _ in _batches(x, pad=None)} == {24}
    assert {b.shape[1] for b, _ in _batches(x)} == {3}


def test_grouping_by_length_pads_less_and_still_visits_every_sample_once() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 16 * GROUP_BATCHES * 2
    lengths = torch.randint(1, 25, (n,), generator=gen).tolist()
    x = _rows(lengths)
    padded_cells = {}
    for group in (False, True):
        cells, rows = 0, []
        for batch, y in _batches(x, group=group):
            cells += batch.numel()
            rows.append(y)
        assert torch.cat(rows).sort().values.tolist() == (torch.arange(n) % 3).sort().values.tolist()
        padded_cells[group] = cells
    real = sum(lengths)
    assert padded_cells[True] < 0.7 * padded_cells[False], padded_cells
    assert padded_cells[True] < 1.2 * real  # nearly no padding left
    # Seeded: the same order again.
    first = [b.tolist() for b, _ in _batches(x, group=True, seed=3)]
    assert first == [b.tolist() for b, _ in _batches(x, group=True, seed=3)]


def test_a_cut_batch_gives_the_loss_and_gradients_of_the_padded_one() -> None:
    torch.manual_seed(0)
    net = build(LAYERS, [24])
    assert net.any_length
    x = _rows([5, 9, 2, 7])
    cut = x[:, :9]
    y = torch.tensor([0, 1, 2, 1])
    loss_fn = LOSSES.build(ComponentSpec(type="cross_entropy", options={}))
    grads = []
    for batch in (x, cut):
        net.zero_grad()
        loss = loss_fn(net(batch), y)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in net.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
