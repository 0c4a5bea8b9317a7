"""Federated learning simulated on one machine: every client's part of the training split is local.

Each round the drawn clients start from the global weights and train them with ``training.fit``
(``rounds.client_fit``: the spec's ``train`` settings for ``local_epochs`` epochs); the strategy
combines their weights (``rounds.RoundAggregator``: through clipped, noised update vectors under
``dp`` and masked ones under ``secure_aggregation``); the global model is evaluated on the
validation split and the round is logged as one row of the run's history (its live curves). The
last global model is registered like any trained model, with ``lineage.federated``. The deployed
mode (``deployed.py``) runs the same two steps, the clients' in their own processes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch

from modelyard.data.prepare import Prepared, Split
from modelyard.errors import SpecError
from modelyard.federated.partition import partition
from modelyard.federated.rounds import RoundAggregator, client_fit, federated_seed, state_of
from modelyard.federated.spec import FederatedSpec
from modelyard.spec import Spec
from modelyard.training import FitResult

__all__ = ["check_federated", "client_splits", "run_rounds", "lineage_of"]

log = logging.getLogger(__name__)

RoundCallback = Callable[[int, dict[str, Any]], None]


def check_federated(spec: Spec, prepared: Prepared) -> None:
    """Everything about the federated section that needs the data, before any run exists."""
    fed = spec.federated
    assert fed is not None
    if not isinstance(prepared.train, Split):
        raise SpecError(
            "Invalid value for `federated`: clients train on in-memory tensors; the training split is streamed",
            field="federated",
        )
    if fed.mode == "simulation":  # a deployed federation's clients hold their own data: nothing to split
        client_splits(spec, prepared)
    if fed.dp is not None:  # a target epsilon no noise can reach is refused now
        from modelyard.federated.dp import ClientDP

        ClientDP(fed, seed=federated_seed(spec))
    if fed.secure_aggregation is not None:  # the extra it needs is missing: one line now, not in round 1
        from modelyard.federated.shares import check_installed

        check_installed()


def client_splits(spec: Spec, prepared: Prepared) -> list[Split]:
    fed = spec.federated
    assert fed is not None
    train = prepared.train
    parts = partition(train.y, fed.partition, fed.clients, seed=federated_seed(spec), groups=prepared.train_groups)
    return [Split(x=train.x[idx], y=train.y[idx]) for idx in parts]


def lineage_of(fed: FederatedSpec) -> dict[str, Any]:
    """What the registered version's ``lineage.federated`` records."""
    return {
        "mode": fed.mode,
        "rounds": fed.rounds,
        "clients": fed.clients,
        "clients_per_round": fed.per_round,
        "local_epochs": fed.local_epochs,
        **({"partition": fed.partition.model_dump(mode="json", exclude_none=True)} if fed.mode == "simulation" else {}),
        **({"quorum": fed.min_updates, "round_timeout_s": fed.timeout_s} if fed.mode == "deployed" else {}),
        "strategy": fed.strategy.model_dump(mode="json", exclude_none=True),
        "secure_aggregation": False if fed.secure_aggregation is None else fed.secure_aggregation.model_dump(),
        **({"dropout": fed.dropout} if fed.dropout else {}),
        **({"dp": fed.dp.model_dump(mode="json", exclude_none=True)} if fed.dp is not None else {}),
    }


def run_rounds(spec: Spec, network: torch.nn.Module, prepared: Prepared, on_round: RoundCallback) -> FitResult:
    """Train ``network`` federatedly as ``spec.federated`` says; it ends holding the last global weights."""
    fed = spec.federated
    assert fed is not None
    splits = client_splits(spec, prepared)
    server = RoundAggregator(spec)
    history: list[dict[str, Any]] = []
    began = time.perf_counter()
    runtime: dict[str, Any] = {}
    for rnd in range(1, fed.rounds + 1):
        t0 = time.perf_counter()
        chosen = server.draw()
        dropped = server.drop(chosen)  # they take part in the key exchange, then fail before their update arrives
        senders = [k for k in chosen if k not in dropped]
        start = state_of(network)
        states, sizes, losses = [], [], []
        for k in senders:
            state, loss, result = client_fit(spec, network, start, prepared, splits[k], rnd=rnd, client=k)
            runtime = result.runtime
            states.append(state)
            sizes.append(len(splits[k]))
            losses.append(loss)
        network.load_state_dict(server.combine(start, states, sizes, rnd, senders=senders, drawn=chosen))
        row = server.row(rnd, network, prepared, losses, sizes, t0)
        if fed.dropout:
            row["dropped"] = len(dropped)
        history.append(row)
        log.info("round %d/%d: %s", rnd, fed.rounds, {k: v for k, v in row.items() if isinstance(v, float)})
        on_round(rnd, row)
    return finished(fed, server, history, runtime, began)


def finished(
    fed: FederatedSpec, server: RoundAggregator, history: list[dict[str, Any]], runtime: dict[str, Any], began: float
) -> FitResult:
    """The FitResult of a federation's rounds: ``runtime.federated`` is the version's ``lineage.federated``."""
    privacy = server.privacy()
    spent = {} if privacy is None else {"epsilon": privacy["epsilon"], "delta": privacy["delta"]}
    return FitResult(
        history=history,
        best_epoch=None,
        stopped_early=False,
        runtime={**runtime, "federated": {**lineage_of(fed), **spent}},
        train_time_s=time.perf_counter() - began,
        privacy=privacy,
    )
