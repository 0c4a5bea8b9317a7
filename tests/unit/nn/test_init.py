"""Initialisers: exact values, the statistics their papers give, and torch's own draws."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from modelyard.errors import SpecError
from modelyard.nn import build_model
from modelyard.nn.init import INITIALIZERS
from modelyard.spec import ModelSpec

FAN_IN, FAN_OUT = 200, 300


def dense(**options: object) -> nn.Linear:
    spec = ModelSpec.model_validate({"input": [FAN_IN], "layers": [{"dense": FAN_OUT, **options}]})
    return build_model(spec).layers[0].linear


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_zeros_ones_and_constant_are_exact() -> None:
    assert torch.equal(dense(init="zeros").weight, torch.zeros(FAN_OUT, FAN_IN))
    assert torch.equal(dense(init="ones").weight, torch.ones(FAN_OUT, FAN_IN))
    layer = dense(init={"constant": 0.5}, bias_init={"constant": -2})
    assert torch.equal(layer.weight, torch.full((FAN_OUT, FAN_IN), 0.5))
    assert torch.equal(layer.bias, torch.full((FAN_OUT,), -2.0))


def test_xavier_uniform_stays_within_the_glorot_bound() -> None:
    w = dense(init="glorot").weight
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))  # Glorot & Bengio (2010), eq. 16
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound


def test_xavier_normal_std() -> None:
    w = dense(init="xavier_normal").weight
    assert abs(w.std().item() - math.sqrt(2 / (FAN_IN + FAN_OUT))) < 0.03 * math.sqrt(2 / (FAN_IN + FAN_OUT))


@pytest.mark.parametrize(
    ("activation", "gain"),
    [
        ("relu", math.sqrt(2)),
        (None, math.sqrt(2)),  # no activation of its own: a ReLU usually follows
        ("tanh", 5 / 3),
        ("leaky_relu", math.sqrt(2 / (1 + 0.01**2))),
    ],
)
def test_he_uniform_bound_follows_the_layer_activation(activation: str | None, gain: float) -> None:
    w = dense(init="he", activation=activation).weight
    bound = gain * math.sqrt(3 / FAN_IN)  # He et al. (2015), uniform form
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound


def test_he_normal_std_and_explicit_nonlinearity() -> None:
    w = dense(init="kaiming_normal", activation="relu").weight
    assert abs(w.std().item() - math.sqrt(2 / FAN_IN)) < 0.03 * math.sqrt(2 / FAN_IN)
    w = dense(init={"he_normal": "linear"}, activation="relu").weight
    assert abs(w.std().item() - math.sqrt(1 / FAN_IN)) < 0.03 * math.sqrt(1 / FAN_IN)
    w = dense(init={"type": "he_normal", "mode": "fan_out"}).weight
    assert abs(w.std().item() - math.sqrt(2 / FAN_OUT)) < 0.03 * math.sqrt(2 / FAN_OUT)


def test_normal_defaults_to_keras_std_and_uniform_to_keras_limit() -> None:
    w = dense(init="normal").weight
    assert abs(w.std().item() - 0.05) < 0.002 and abs(w.mean().item()) < 0.002
    w = dense(init={"normal": {"mean": 1.0, "std": 0.2}}).weight
    assert abs(w.std().item() - 0.2) < 0.005 and abs(w.mean().item() - 1.0) < 0.005
    w = dense(init="uniform").weight
    assert w.abs().max() <= 0.05 and w.abs().max() > 0.049


def test_conv_fan_in_counts_the_kernel() -> None:
    spec = ModelSpec.model_validate({"input": [8, 12, 12], "layers": [{"conv2d": 64, "kernel": 3, "init": "he"}]})
    w = build_model(spec).layers[0].conv.weight
    bound = math.sqrt(2) * math.sqrt(3 / (8 * 3 * 3))
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound


def test_bias_policy() -> None:
    # init given → bias zeros; bias_init given → it wins; nothing given → torch's default.
    assert torch.equal(dense(init="xavier").bias, torch.zeros(FAN_OUT))
    assert torch.equal(dense(init="xavier", bias_init="ones").bias, torch.ones(FAN_OUT))
    torch.manual_seed(3)
    ours = dense()
    torch.manual_seed(3)
    ref = nn.Linear(FAN_IN, FAN_OUT)
    assert torch.equal(ours.weight, ref.weight) and torch.equal(ours.bias, ref.bias)
    torch.manual_seed(3)
    only_bias = dense(bias_init="zeros")
    assert torch.equal(only_bias.weight, ref.weight) and torch.equal(only_bias.bias, torch.zeros(FAN_OUT))


def test_draws_equal_torch_init_functions_under_the_same_seed() -> None:
    torch.manual_seed(7)
    ours = dense(init="xavier")
    torch.manual_seed(7)
    ref = nn.Linear(FAN_IN, FAN_OUT)
    nn.init.xavier_uniform_(ref.weight)
    assert torch.equal(ours.weight, ref.weight)


def test_embedding_init() -> None:
    spec = ModelSpec.model_validate({"input": [4], "layers": [{"embedding": 50, "dim": 8, "init": {"uniform": 0.1}}]})
    w = build_model(spec).layers[0].weight
    assert w.abs().max() <= 0.1 and w.abs().max() > 0.09


def test_registry_names_and_fan_based_bias_refused() -> None:
    assert {"xavier", "xavier_normal", "he", "he_normal", "normal", "zeros", "ones", "default"} <= set(
        INITIALIZERS.names()
    )
    assert INITIALIZERS.canonical("glorot_uniform") == "xavier"
    assert INITIALIZERS.canonical("kaiming_uniform") == "he"
    with pytest.raises(SpecError, match=r"model\.layers\[0\]\.bias_init.*no fan-in"):
        ModelSpec.model_validate({"input": [4], "layers": [{"dense": 2, "bias_init": "xavier"}]})
    with pytest.raises(SpecError, match=r"model\.layers\[0\]\.init.*option `std`"):
        ModelSpec.model_validate({"input": [4], "layers": [{"dense": 2, "init": {"normal": {"std": 0}}}]})
