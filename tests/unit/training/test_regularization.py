"""L1/L2 penalties, gradient clipping, weight decay and early stopping."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from modelyard.spec import EarlyStoppingSpec, TrainSpec
from modelyard.training import fit
from modelyard.training.early_stopping import EarlyStopping, resolve_mode
from modelyard.training.regularization import clip_gradients, penalized_parameters, weight_penalty


def net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    model.output_activation, model.input_shape = None, (3,)
    return model


def prepared(x, y, val=None):
    return SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=val, test=None, num_classes=None, pipeline=None)


def test_penalty_values_by_hand():
    w1 = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    w2 = torch.tensor([[[-3.0]]])
    assert weight_penalty([w1, w2], l1=0.1).item() == pytest.approx(0.1 * (1 + 2 + 0.5 + 3))
    assert weight_penalty([w1, w2], l2=0.01).item() == pytest.approx(0.01 * (1 + 4 + 0.25 + 9))
    assert weight_penalty([w1, w2], l1=0.1, l2=0.01).item() == pytest.approx(0.65 + 0.1425)
    assert weight_penalty([w1], l1=0.0, l2=0.0) is None


def test_only_weight_matrices_and_kernels_are_penalized():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 1))
    assert [p.shape for p in penalized_parameters(model)] == [torch.Size([2, 1, 3, 3]), torch.Size([1, 2])]


def test_l2_penalty_changes_the_step_like_a_hand_written_loop():
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    ours, ref = net(), net()
    fit(
        ours,
        prepared(x, y),
        TrainSpec.model_validate(
            {"loss": "mse", "optimizer": "gd", "lr": 0.1, "epochs": 2, "l1": 0.01, "l2": 0.05, "precision": "fp32"}
        ),
        seed=0,
        progress=False,
    )
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for _ in range(2):
        weights = [ref[0].weight, ref[2].weight]
        loss = (
            nn.functional.mse_loss(ref(x), y)
            + 0.01 * sum(w.abs().sum() for w in weights)
            + 0.05 * sum((w**2).sum() for w in weights)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_clipping_by_value_then_norm():
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([3.0, -0.5, 4.0])
    clip_gradients([p], max_value=1.0)
    assert p.grad.tolist() == [1.0, -0.5, 1.0]
    p.grad = torch.tensor([3.0, 0.0, 4.0])
    clip_gradients([p], max_norm=1.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.0, 0.8]), atol=1e-5)


@pytest.mark.parametrize(("option", "clip"), [("clip_grad_norm", "norm"), ("clip_grad_value", "value")])
def test_clipping_in_fit_matches_torch(option, clip):
    x, y = torch.randn(8, 3) * 10, torch.randn(8, 1) * 10
    ours, ref = net(), net()
    fit(
        ours,
        prepared(x, y),
        TrainSpec.model_validate(
            {"loss": "mse", "optimizer": "gd", "lr": 0.1, "epochs": 1, option: 0.05, "precision": "fp32"}
        ),
        seed=0,
        progress=False,
    )
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    nn.functional.mse_loss(ref(x), y).backward()
    if clip == "norm":
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
    else:
        torch.nn.utils.clip_grad_value_(ref.parameters(), 0.05)
    opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_weight_decay_reaches_the_optimizer():
    # No BatchNorm here: a bias right before BatchNorm has a true gradient of 0, and Adam's
    # normalisation blows its ~1e-7 rounding noise up into a full-size step whose sign
    # depends on the thread count.
    def plain() -> nn.Module:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        model.output_activation, model.input_shape = None, (3,)
        return model

    x, y = torch.randn(8, 3), torch.randn(8, 1)
    ours, ref = plain(), plain()
    fit(
        ours,
        prepared(x, y),
        TrainSpec.model_validate(
            {
                "loss": "mse",
                "optimizer": "adamw",
                "lr": 0.1,
                "weight_decay": 0.5,
                "batch_size": "full",
                "epochs": 1,
                "precision": "fp32",
            }
        ),
        seed=0,
        progress=False,
    )
    opt = torch.optim.AdamW(ref.parameters(), lr=0.1, weight_decay=0.5)
    nn.functional.mse_loss(ref(x), y).backward()
    opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_mode_auto():
    assert resolve_mode("val_loss") == "min" and resolve_mode("loss") == "min" and resolve_mode("val_mse") == "min"
    for name in ("val_accuracy", "accuracy", "val_top_3_accuracy", "f1_weighted", "val_precision", "recall", "val_r2"):
        assert resolve_mode(name) == "max", name
    assert resolve_mode("val_accuracy", "min") == "min"


def test_early_stopping_counts_patience_and_min_delta():
    es = EarlyStopping(EarlyStoppingSpec(monitor="val_accuracy", patience=2, min_delta=0.01))
    marks = [es.update(e, {"val_accuracy": v}) for e, v in enumerate([0.5, 0.6, 0.605, 0.7, 0.7, 0.69], start=1)]
    assert marks == [True, True, False, True, False, False]
    assert es.should_stop and es.best_epoch == 4 and es.best == 0.7
    again = EarlyStopping(es.spec)
    again.load_state_dict(es.state_dict())
    assert again.state_dict() == es.state_dict()


def test_fit_stops_early_and_restores_the_best_weights():
    # Validation targets are the training targets negated: learning the training set makes
    # the validation loss worse, so the best epoch comes early and training stops.
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = net()
    snapshots = {}
    spec = TrainSpec.model_validate(
        {
            "loss": "mse",
            "optimizer": "sgd",
            "lr": 0.05,
            "batch_size": 8,
            "epochs": 30,
            "precision": "fp32",
            "early_stopping": {"monitor": "val_loss", "patience": 3},
        }
    )
    result = fit(
        model,
        prepared(x, y, val=SimpleNamespace(x=x, y=-y)),
        spec,
        seed=0,
        progress=False,
        on_epoch_end=lambda e, m: snapshots.__setitem__(e, copy.deepcopy(model.state_dict())),
    )
    val = [row["val_loss"] for row in result.history]
    best = val.index(min(val)) + 1
    assert result.stopped_early and result.best_epoch == best and len(result.history) == best + 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[best][key]), key
    assert not torch.equal(model[0].weight, snapshots[len(val)]["0.weight"])


def test_restore_best_off_keeps_the_last_weights():
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x.sum(1, keepdim=True)
    model = net()
    spec = TrainSpec.model_validate(
        {
            "loss": "mse",
            "optimizer": "sgd",
            "lr": 0.05,
            "batch_size": 8,
            "epochs": 30,
            "precision": "fp32",
            "early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best": False},
        }
    )
    last = {}
    result = fit(
        model,
        prepared(x, y, val=SimpleNamespace(x=x, y=-y)),
        spec,
        seed=0,
        progress=False,
        on_epoch_end=lambda e, m: last.update(copy.deepcopy(model.state_dict())),
    )
    assert result.stopped_early
    assert all(torch.equal(v, last[k]) for k, v in model.state_dict().items())
