"""Every loss against torch.nn.functional on tiny tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modelyard.errors import DataError, SpecError
from modelyard.spec import TrainSpec
from modelyard.training.losses import LOSSES


def build(raw):
    return LOSSES.build(LOSSES.parse(raw, field="train.loss"))


@pytest.fixture
def reg():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("mse", F.mse_loss),
        ("mean_squared_error", F.mse_loss),
        ("mae", F.l1_loss),
        ("l1", F.l1_loss),
        ("mean_absolute_error", F.l1_loss),
        ("huber", F.huber_loss),
    ],
)
def test_regression_losses_match_torch(name, reference, reg):
    out, target = reg
    assert torch.allclose(build(name)(out, target), reference(out, target))


def test_huber_delta_option(reg):
    out, target = reg
    loss = build({"huber": 0.3})
    assert torch.allclose(loss(out, target), F.huber_loss(out, target, delta=0.3))
    assert not torch.allclose(loss(out, target), F.huber_loss(out, target, delta=1.0))


def test_regression_target_of_shape_n_fits_one_output():
    out, target = torch.randn(5, 1), torch.randn(5)
    assert torch.allclose(build("mse")(out, target), F.mse_loss(out, target[:, None]))


def test_regression_target_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError, match=r"expected shape \[5, 2\].*received \[5, 3\]"):
        build("mse")(torch.randn(5, 2), torch.randn(5, 3))


@pytest.mark.parametrize(
    "alias", ["cross_entropy", "categorical_crossentropy", "sparse_categorical_crossentropy", "ce"]
)
def test_cross_entropy_on_logits_with_class_indices(alias):
    logits, labels = torch.randn(6, 4), torch.tensor([0, 3, 1, 2, 2, 0])
    assert torch.allclose(build(alias)(logits, labels), F.cross_entropy(logits, labels))


def test_cross_entropy_one_hot_equals_indices():
    logits, labels = torch.randn(6, 4), torch.tensor([0, 3, 1, 2, 2, 0])
    one_hot = F.one_hot(labels, 4).float()
    loss = build("cross_entropy")
    assert torch.allclose(loss(logits, one_hot), loss(logits, labels))
    # [N, 1] integer columns are class indices too
    assert torch.allclose(loss(logits, labels[:, None]), loss(logits, labels))


def test_cross_entropy_probability_targets_and_label_smoothing():
    logits = torch.randn(6, 4)
    probs = torch.softmax(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 3, 1, 2, 2, 0])
    assert torch.allclose(build("cross_entropy")(logits, probs), F.cross_entropy(logits, probs))
    smooth = build({"cross_entropy": {"label_smoothing": 0.1}})
    assert torch.allclose(smooth(logits, labels), F.cross_entropy(logits, labels, label_smoothing=0.1))


def test_cross_entropy_bad_targets_are_data_errors():
    with pytest.raises(DataError, match="one-hot rows"):
        build("cross_entropy")(torch.randn(6, 4), torch.rand(6, 3))
    with pytest.raises(DataError, match="class indices of shape"):
        build("cross_entropy")(torch.randn(6, 4), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("alias", ["binary_cross_entropy", "bce", "binary_crossentropy"])
def test_bce_with_logits_equals_bce_on_sigmoid(alias):
    logits = torch.randn(7, 1)
    target = torch.tensor([0, 1, 1, 0, 1, 0, 0], dtype=torch.float32)[:, None]
    expected = F.binary_cross_entropy(torch.sigmoid(logits), target)
    assert torch.allclose(build(alias)(logits, target), expected, atol=1e-6)
    # targets [N] for outputs [N, 1], and integer 0/1 targets
    assert torch.allclose(build(alias)(logits, target[:, 0]), expected, atol=1e-6)
    assert torch.allclose(build(alias)(logits, target[:, 0].long()), expected, atol=1e-6)


def test_loss_specs_resolve_to_canonical_names():
    spec = TrainSpec.model_validate({"loss": "categorical_crossentropy"})
    assert spec.loss.type == "cross_entropy" and spec.loss.options == {"label_smoothing": 0.0}
    assert TrainSpec.model_validate({"loss": {"huber": 2.0}}).loss.options == {"delta": 2.0}
    with pytest.raises(SpecError, match="did you mean 'mse'"):
        TrainSpec.model_validate({"loss": "msee"})
    with pytest.raises(SpecError, match=r"train\.loss\.label_smoothing"):
        TrainSpec.model_validate({"loss": {"cross_entropy": {"label_smoothing": 1.5}}})
