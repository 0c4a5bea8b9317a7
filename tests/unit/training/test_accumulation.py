"""train.accumulate_batches: N batches make one optimizer step equal to one big-batch step in plain torch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from modelyard.training import fit
from tests.unit.test_spec import error_of, spec_with
from tests.unit.training.test_loop import blobs, data, network, spec


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return network(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3), output_activation="softmax", input_shape=(4,))


def plain_torch(net: nn.Module, x, y, *, batch: int, epochs: int, make_opt, clip=None) -> nn.Module:
    """Reference: plain torch big-batch steps in the same (unshuffled) order."""
    opt = make_opt(net.parameters())
    for _ in range(epochs):
        for start in range(0, x.shape[0], batch):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[start : start + batch]), y[start : start + batch]).backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
    return net


@pytest.mark.parametrize(
    ("n", "optimizer", "make_opt", "extra"),
    [
        (32, "sgd", lambda p: torch.optim.SGD(p, lr=0.5), {}),
        (30, "sgd", lambda p: torch.optim.SGD(p, lr=0.5), {}),  # a short last batch in a short last group
        (70, "adam", lambda p: torch.optim.Adam(p, lr=0.01), {}),  # 3 optimizer steps per epoch
        (64, "adam", lambda p: torch.optim.Adam(p, lr=0.01), {"clip_grad_norm": 0.05}),  # clips the summed gradient
    ],
)
def test_accumulated_batches_equal_one_big_batch_step(n, optimizer, make_opt, extra):
    x, y = blobs(n=n)
    ours, ref = mlp(), mlp()
    train = spec(
        loss="cross_entropy",
        optimizer=optimizer,
        lr=make_opt([nn.Parameter(torch.zeros(1))]).defaults["lr"],
        batch_size=8,
        accumulate_batches=4,
        epochs=2,
        shuffle=False,
        checkpoint=False,
        **extra,
    )
    result = fit(ours, data(x, y, num_classes=3), train, seed=0, progress=False)
    plain_torch(ref, x, y, batch=32, epochs=2, make_opt=make_opt, clip=extra.get("clip_grad_norm"))
    assert result.runtime["step"] == "autograd"
    for (name, a), b in zip(ours.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_without_accumulation_the_small_batches_give_other_weights():
    # The check above can fail: 8-sample steps land elsewhere than 32-sample steps.
    x, y = blobs(n=32)
    ours, ref = mlp(), mlp()
    fit(
        ours,
        data(x, y, num_classes=3),
        spec(loss="cross_entropy", optimizer="sgd", lr=0.5, batch_size=8, epochs=1, shuffle=False, checkpoint=False),
        seed=0,
        progress=False,
    )
    plain_torch(ref, x, y, batch=32, epochs=1, make_opt=lambda p: torch.optim.SGD(p, lr=0.5))
    assert not torch.allclose(ours[0].weight, ref[0].weight, atol=1e-4)


def test_schedule_counts_optimizer_steps():
    x, y = blobs(n=64)
    ours = mlp()
    train = spec(
        loss="cross_entropy",
        optimizer="sgd",
        lr=0.1,
        batch_size=8,
        accumulate_batches=4,
        epochs=3,
        schedule={"linear": {"warmup_steps": 2}},
        shuffle=False,
        checkpoint=False,
    )
    net = copy.deepcopy(ours)
    result = fit(net, data(x, y, num_classes=3), train, seed=0, progress=False)
    # 2 optimizer steps per epoch, 6 in all: lr at each epoch's start is factor(0), factor(2), factor(4).
    assert [row["lr"] for row in result.history] == pytest.approx([0.0, 0.1, 0.1 * 2 / 4])


def test_accumulation_spec_errors():
    assert error_of(spec_with(train__accumulate_batches=0)) == (
        "Invalid value for `train.accumulate_batches`: expected a number >= 1, received 0 (int)"
    )
    assert "`train.accumulate_batches`: expected an integer" in error_of(spec_with(train__accumulate_batches="two"))
    private = error_of(spec_with(train__accumulate_batches=2, train__privacy={"epsilon": 1, "delta": 1e-5}))
    assert "train.accumulate_batches cannot be combined with train.privacy" in private
