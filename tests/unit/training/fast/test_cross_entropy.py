"""Plain cross-entropy's tape-free value and gradient (training.fast.cross_entropy), bitwise against autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modelyard import fast_paths
from modelyard.errors import DataError
from modelyard.spec import TrainSpec
from modelyard.training.fast.cross_entropy import cross_entropy_value_and_grad, value_and_grad_for
from modelyard.training.losses import LOSSES


def _loss(raw):
    return TrainSpec.model_validate({"loss": raw}).loss


def build(raw):
    return LOSSES.build(_loss(raw))


@pytest.mark.parametrize("target_form", ["indices", "column", "int32"])
def test_cross_entropy_value_and_grad_is_bitwise_autograd(target_form) -> None:
    loss_fn = build("cross_entropy")
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(128, 10, generator=g) * 4
    y = torch.randint(0, 10, (128,), generator=g)
    target = {"indices": y, "column": y[:, None], "int32": y.int()}[target_form]
    leaf = logits.clone().requires_grad_(True)
    want_loss = loss_fn(leaf, target)
    (want_grad,) = torch.autograd.grad(want_loss, leaf)
    got_loss, got_grad = cross_entropy_value_and_grad(logits, target)
    assert torch.equal(got_loss, want_loss.detach()) and torch.equal(got_grad, want_grad)
    assert torch.equal(got_loss, F.cross_entropy(logits, y))


def test_cross_entropy_value_and_grad_leaves_other_cases_to_autograd() -> None:
    logits = torch.randn(4, 3)
    plain = build("cross_entropy")
    assert (
        cross_entropy_value_and_grad(logits, F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()) is None
    )  # one-hot rows
    assert cross_entropy_value_and_grad(logits, torch.tensor([0, 1])) is None  # wrong length: loss() raises its message
    assert cross_entropy_value_and_grad(torch.randn(4, 3, 2), torch.zeros(4, 2, dtype=torch.long)) is None
    assert value_and_grad_for(_loss({"cross_entropy": {"label_smoothing": 0.1}})) is None  # smoothing: autograd
    assert value_and_grad_for(_loss("mse")) is None
    assert value_and_grad_for(_loss("categorical_crossentropy")) is cross_entropy_value_and_grad
    with pytest.raises(DataError, match="cross_entropy"):
        plain(logits, torch.tensor([0, 1]))


def test_with_fast_paths_off_the_loss_goes_through_autograd() -> None:
    with fast_paths.disabled():
        assert value_and_grad_for(_loss("cross_entropy")) is None
    assert value_and_grad_for(_loss("cross_entropy")) is cross_entropy_value_and_grad
