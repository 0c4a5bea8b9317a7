"""Every optimizer: two steps equal plain torch's optimizer with the same settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelyard.errors import SpecError
from modelyard.spec import TrainSpec
from modelyard.training.optimizers import OPTIMIZERS, implementation

X = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
Y = torch.randn(16, 2, generator=torch.Generator().manual_seed(2))


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def two_steps(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    for _ in range(2):
        opt.zero_grad()
        nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


CASES = [
    ("gd", torch.optim.SGD, {}, {}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, {"momentum": 0.9, "nesterov": True}),
    ("sgd", torch.optim.SGD, {"momentum": 0.5, "dampening": 0.1}, {"momentum": 0.5, "dampening": 0.1}),
    (
        "adam",
        torch.optim.Adam,
        {"betas": [0.8, 0.99], "eps": 1e-6, "amsgrad": True},
        {"betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True},
    ),
    ("adamw", torch.optim.AdamW, {}, {}),
    (
        "rmsprop",
        torch.optim.RMSprop,
        {"alpha": 0.9, "momentum": 0.5, "centered": True},
        {"alpha": 0.9, "momentum": 0.5, "centered": True},
    ),
    (
        "adagrad",
        torch.optim.Adagrad,
        {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
        {"lr_decay": 0.01, "initial_accumulator_value": 0.1},
    ),
]


@pytest.mark.parametrize(("name", "cls", "options", "torch_kwargs"), CASES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_two_steps_equal_plain_torch(name, cls, options, torch_kwargs, weight_decay):
    ours_model, ref_model = tiny(), tiny()
    spec = OPTIMIZERS.parse({"type": name, **options}, field="train.optimizer")
    ours = OPTIMIZERS.build(spec, ours_model.parameters(), lr=0.05, weight_decay=weight_decay)
    ref = cls(ref_model.parameters(), lr=0.05, weight_decay=weight_decay, **torch_kwargs)
    assert type(ours) is cls
    for a, b in zip(two_steps(ours_model, ours), two_steps(ref_model, ref)):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), name
    assert not torch.equal(ours_model[0].weight, tiny()[0].weight)  # it did move


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gd", "fused"),
        ("sgd", "fused"),
        ("adam", "fused"),
        ("adamw", "fused"),
        ("adagrad", "fused"),
        ("rmsprop", "foreach"),
    ],
)
def test_fastest_implementation_is_chosen_on_cpu(name, expected):
    spec = OPTIMIZERS.parse(name, field="train.optimizer")
    opt = OPTIMIZERS.build(spec, tiny().parameters(), lr=0.1, weight_decay=0.0)
    assert implementation(opt) == expected


def test_implementation_of_plain_torch_optimizers():
    assert implementation(torch.optim.SGD(tiny().parameters(), lr=0.1)) == "for-loop"
    assert implementation(torch.optim.SGD(tiny().parameters(), lr=0.1, foreach=True)) == "foreach"


def test_falls_back_when_no_fused_kernel(monkeypatch):
    """Where torch has no fused kernel (simulated: an SGD refusing fused=True), foreach is used."""
    calls = []

    class NoFused(torch.optim.SGD):
        def __init__(self, params, **kwargs):
            calls.append(kwargs.get("fused"))
            if kwargs.get("fused"):
                raise RuntimeError(
                    "`fused=True` requires all the params to be floating point Tensors of supported devices"
                )
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", NoFused)
    opt = OPTIMIZERS.build(OPTIMIZERS.parse("sgd", field="f"), tiny().parameters(), lr=0.1, weight_decay=0.0)
    assert calls == [True, None] and implementation(opt) == "foreach"


def test_aliases_and_option_errors():
    assert TrainSpec.model_validate({"loss": "mse", "optimizer": "gradient_descent"}).optimizer.type == "gd"
    assert TrainSpec.model_validate({"loss": "mse", "optimizer": "full_batch_gd"}).batch_size == "full"
    assert TrainSpec.model_validate({"loss": "mse", "optimizer": {"sgd": 0.9}}).optimizer.options["momentum"] == 0.9
    with pytest.raises(SpecError, match="nesterov momentum needs momentum > 0"):
        TrainSpec.model_validate({"loss": "mse", "optimizer": {"sgd": {"nesterov": True}}})
    with pytest.raises(SpecError, match=r"betas in \[0, 1\)"):
        TrainSpec.model_validate({"loss": "mse", "optimizer": {"adam": {"betas": [0.9, 1.5]}}})
    with pytest.raises(SpecError, match="did you mean 'adam'"):
        TrainSpec.model_validate({"loss": "mse", "optimizer": "adma"})
