"""The ``federated:`` section: its forms, its defaults, and one clear line for each bad value."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import SpecError
from modelyard.spec import load_spec
from tests.support.compression import digits_spec

DP = {"noise_multiplier": 1.0, "delta": 1e-3}


def federated(**section: Any) -> dict[str, Any]:
    spec = digits_spec(epochs=1)
    spec["federated"] = {"clients": 4, "rounds": 2, **section}
    return spec


def test_the_short_forms_resolve_to_the_full_section_and_round_trip() -> None:
    spec = load_spec(federated(partition={"dirichlet": 0.5}, strategy={"fedprox": 0.1}, clients_per_round=2))
    fed = spec.federated
    assert fed is not None and fed.partition.type == "dirichlet" and fed.partition.alpha == 0.5
    assert fed.strategy.type == "fedprox" and fed.strategy.mu == 0.1 and fed.per_round == 2
    assert load_spec(spec.to_dict()).federated == fed
    adam = load_spec(federated(strategy="fedadam", partition="shards")).federated
    assert adam is not None and (adam.strategy.server_lr, adam.strategy.beta2, adam.strategy.tau) == (0.01, 0.99, 1e-3)
    assert adam.partition.shards_per_client == 2 and adam.per_round == 4
    assert load_spec(digits_spec()).federated is None
    private = load_spec(federated(dp={"epsilon": 3.0, "delta": 1e-3}, secure_aggregation=True)).federated
    assert private is not None and private.dp is not None and private.dp.max_update_norm == 1.0
    assert (
        private.secure_aggregation is not None
        and load_spec(load_spec(federated(dp=DP)).to_dict()).federated.dp.noise_multiplier == 1.0
    )


@pytest.mark.parametrize(
    ("given", "threshold"),
    [(True, 3), ({}, 3), ({"threshold": 2}, 2), ({"threshold": 4}, 4)],
)
def test_secure_aggregations_threshold_defaults_to_two_thirds_and_round_trips(given: Any, threshold: int) -> None:
    spec = load_spec(federated(secure_aggregation=given, dropout=0.25))  # 4 clients: ceil(8/3) = 3
    fed = spec.federated
    assert fed is not None and fed.secure_aggregation is not None and fed.secure_aggregation.threshold == threshold
    assert fed.dropout == 0.25 and load_spec(spec.to_dict()).federated == fed
    ten = load_spec(federated(clients=10, secure_aggregation=True)).federated
    assert ten is not None and ten.secure_aggregation is not None and ten.secure_aggregation.threshold == 7
    off = load_spec(federated(secure_aggregation=False)).federated
    assert off is not None and off.secure_aggregation is None and off.dropout == 0.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"partition": {"dirichlet": {"alpha": 0}}}, "`federated.partition.alpha`: expected a number > 0, received 0"),
        ({"partition": {"dirichlet": -0.5}}, "`federated.partition.alpha`: expected a number > 0, received -0.5"),
        ({"partition": "dirichlet"}, "partition 'dirichlet' needs alpha"),
        (
            {"partition": "dirichelt"},
            "`federated.partition.type`: expected one of 'iid', 'dirichlet', 'shards' or 'column'",
        ),
        ({"clients_per_round": 5}, "clients_per_round: expected at most clients (4), received 5"),
        ({"strategy": "fedsgd"}, "`federated.strategy.type`: expected one of 'fedavg', 'fedprox' or 'fedadam'"),
        ({"strategy": {"fedavg": {"mu": 0.1}}}, "strategy 'fedavg' takes no options; received option 'mu'"),
        ({"strategy": {"fedadam": {"tau": 0}}}, "`federated.strategy.tau`: expected a number > 0, received 0"),
        ({"clients": 1}, "`federated.clients`: expected a number >= 2, received 1"),
        ({"rounds": 0}, "`federated.rounds`: expected a number >= 1, received 0"),
        ({"clients": True}, "clients: expected a positive integer, received True (bool)"),
        ({"cleints": 3}, "unknown field 'cleints'; did you mean 'clients'?"),
        ({"dp": {**DP, "max_update_norm": 0}}, "`federated.dp.max_update_norm`: expected a number > 0, received 0"),
        ({"dp": {**DP, "noise_multiplier": -1}}, "`federated.dp.noise_multiplier`: expected a number > 0, received -1"),
        ({"dp": {"delta": 1e-3}}, "`federated.dp`: expected exactly one of noise_multiplier (epsilon reported) or"),
        ({"dp": {**DP, "epsilon": 2.0}}, "or epsilon (noise calibrated), received both"),
        ({"dp": {**DP, "delta": 0.3}}, "dp.delta: expected a value below 1/clients = 1/4 (0.25)"),
        ({"dp": {"noise_multiplier": 1.0}}, "Missing required field `federated.dp.delta`"),
        ({"dp": {**DP, "clip": 1.0}}, "unknown field 'clip'"),
        ({"dp": {"epsilon": 0, "delta": 1e-3}}, "`federated.dp.epsilon`: expected a number > 0, received 0"),
        (
            {"secure_aggregation": True, "clients_per_round": 1},
            "secure_aggregation: expected clients_per_round >= 2 (the sum of one client's update is that update)",
        ),
        (
            {"secure_aggregation": {"threshold": 5}},
            "secure_aggregation.threshold: expected at most clients_per_round (4), the clients that hold a share, "
            "received 5",
        ),
        (
            {"secure_aggregation": {"threshold": 1}},
            "`federated.secure_aggregation.threshold`: expected a number >= 2, received 1",
        ),
        ({"secure_aggregation": {"threshold": True}}, "threshold: expected an integer >= 2, received True (bool)"),
        ({"secure_aggregation": {"treshold": 3}}, "unknown field 'treshold'; did you mean 'threshold'?"),
        ({"secure_aggregation": "yes"}, "secure_aggregation: expected true, false or {threshold: t}, received 'yes'"),
        ({"dropout": 1.0}, "`federated.dropout`: expected a number < 1, received 1.0"),
        ({"dropout": -0.1}, "`federated.dropout`: expected a number >= 0, received -0.1"),
        ({"dropout": True}, "dropout: expected a fraction in [0, 1), received True (bool)"),
    ],
)
def test_bad_values_are_one_line_naming_the_field(section: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(federated(**section))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_federated_refuses_sample_level_privacy_and_streamed_data() -> None:
    spec = federated()
    spec["train"]["privacy"] = {"epsilon": 3.0, "delta": 1e-5}
    with pytest.raises(SpecError, match="train.privacy cannot be combined with federated"):
        load_spec(spec)
    spec = federated()
    spec["data"]["stream"] = True
    with pytest.raises(SpecError, match="data.stream cannot be combined with federated"):
        load_spec(spec)
