"""Federated learning simulated on one machine: every client's part of the training split is local.

Each round the drawn clients start from the global weights and train them with ``training.fit``
(the one training loop, with the spec's ``train`` settings for ``local_epochs`` epochs); the
strategy combines their weights (through clipped, noised update vectors under ``dp`` and masked
ones under ``secure_aggregation``); the global model is evaluated on the validation split and the
round is logged as one row of the run's history (its live curves). The last global model is
registered like any trained model, with ``lineage.federated``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, Callable

import numpy as np
import torch

from modelyard import fast_paths
from modelyard.data.prepare import Prepared, Split
from modelyard.errors import SpecError
from modelyard.federated.partition import partition
from modelyard.federated.spec import FederatedSpec
from modelyard.federated.strategies import Aggregator, State, proximal_term
from modelyard.federated.updates import Layout
from modelyard.spec import Spec
from modelyard.training import FitResult, evaluate, fit
from modelyard.training.losses import LOSSES

__all__ = ["check_federated", "client_splits", "run_rounds", "lineage_of"]

log = logging.getLogger(__name__)

RoundCallback = Callable[[int, dict[str, Any]], None]


def _seed(spec: Spec) -> int:
    fed = spec.federated
    assert fed is not None
    return spec.seed if fed.seed is None else fed.seed


def check_federated(spec: Spec, prepared: Prepared) -> None:
    """Everything about the federated section that needs the data, before any run exists."""
    fed = spec.federated
    if not isinstance(prepared.train, Split):
        raise SpecError(
            "Invalid value for `federated`: clients train on in-memory tensors; the training split is streamed",
            field="federated",
        )
    client_splits(spec, prepared)
    if fed is not None and fed.dp is not None:  # a target epsilon no noise can reach is refused now
        from modelyard.federated.dp import ClientDP

        ClientDP(fed, seed=_seed(spec))
    if fed is not None and fed.secure_aggregation:  # the extra it needs is missing: one line now, not in round 1
        from modelyard.federated.secure import check_installed

        check_installed()


def client_splits(spec: Spec, prepared: Prepared) -> list[Split]:
    fed = spec.federated
    assert fed is not None
    train = prepared.train
    parts = partition(train.y, fed.partition, fed.clients, seed=_seed(spec), groups=prepared.train_groups)
    return [Split(x=train.x[idx], y=train.y[idx]) for idx in parts]


def lineage_of(fed: FederatedSpec) -> dict[str, Any]:
    """What the registered version's ``lineage.federated`` records."""
    return {
        "rounds": fed.rounds,
        "clients": fed.clients,
        "clients_per_round": fed.per_round,
        "local_epochs": fed.local_epochs,
        "partition": fed.partition.model_dump(mode="json", exclude_none=True),
        "strategy": fed.strategy.model_dump(mode="json", exclude_none=True),
        "secure_aggregation": fed.secure_aggregation,
        **({"dp": fed.dp.model_dump(mode="json", exclude_none=True)} if fed.dp is not None else {}),
    }


def _combine(
    fed: FederatedSpec, start: State, states: list[State], sizes: list[int], dp: Any, rnd: int
) -> State | None:
    """The clients' mean weights through update vectors (clipped and noised under dp, masked under
    secure aggregation); None when neither is asked for (the strategy averages the states itself)."""
    if dp is None and not fed.secure_aggregation:
        return None
    layout = Layout.of(start)
    vectors = []
    for state, size in zip(states, sizes):
        update = layout.update(state, start)
        # DP weighs clients equally (a sample-weighted mean would let one client move it by more than S/m);
        # otherwise each client sends size * update and its size, and the server divides the two sums.
        weight = 1.0 if dp is not None else float(size)
        update = dp.clip(update) if dp is not None else update
        vectors.append(np.append(update * weight, weight))
    if fed.secure_aggregation:
        from modelyard.federated.secure import MaskingClient, unmask_sum

        clients = [MaskingClient(i) for i in range(len(vectors))]
        keys = {c.index: c.public_key for c in clients}  # what the server relays to every client of the round
        masked = [c.mask(v, keys, context=b"round %d" % rnd) for c, v in zip(clients, vectors)]
        total = unmask_sum(masked)  # the server never holds an unmasked client vector
    else:
        total = np.sum(vectors, axis=0)
    mean = dp.noised_mean(total[:-1], len(states)) if dp is not None else total[:-1] / total[-1]
    return layout.apply(start, mean)


def _state(network: torch.nn.Module) -> State:
    return {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}


def run_rounds(spec: Spec, network: torch.nn.Module, prepared: Prepared, on_round: RoundCallback) -> FitResult:
    """Train ``network`` federatedly as ``spec.federated`` says; it ends holding the last global weights."""
    fed = spec.federated
    assert fed is not None
    seed = _seed(spec)
    splits = client_splits(spec, prepared)
    local = spec.train.model_copy(update={"epochs": fed.local_epochs, "checkpoint": False, "early_stopping": None})
    aggregate = Aggregator(fed.strategy)
    dp = None
    if fed.dp is not None:
        from modelyard.federated.dp import ClientDP

        dp = ClientDP(fed, seed=seed)
    draw = np.random.default_rng(seed + 1)
    base_loss = LOSSES.build(spec.train.loss)
    history: list[dict[str, Any]] = []
    began = time.perf_counter()
    runtime: dict[str, Any] = {}
    for rnd in range(1, fed.rounds + 1):
        t0 = time.perf_counter()
        chosen = sorted(draw.choice(fed.clients, size=fed.per_round, replace=False).tolist())
        start = _state(network)
        states, sizes, losses = [], [], []
        for k in chosen:
            network.load_state_dict(start)
            loss_fn, guard = None, contextlib.nullcontext()
            if fed.strategy.type == "fedprox":
                anchor = {n: p.detach().clone() for n, p in network.named_parameters()}
                mu = float(fed.strategy.mu or 0.0)

                def loss_fn(out: torch.Tensor, y: torch.Tensor, anchor: State = anchor, mu: float = mu) -> torch.Tensor:
                    return base_loss(out, y) + proximal_term(network, anchor, mu)

                # The tape-free dense step differentiates the loss by the outputs only; the proximal
                # term is a function of the weights, so FedProx clients train through autograd.
                guard = fast_paths.disabled()
            client = dataclasses.replace(prepared, train=splits[k], val=None, test=None)
            with guard:
                result = fit(
                    network, client, local, seed=seed * 1_000_003 + rnd * 1009 + k, progress=False, loss_fn=loss_fn
                )
            runtime = result.runtime
            states.append(_state(network))
            sizes.append(len(splits[k]))
            losses.append(float(result.history[-1]["loss"]))
        combined = _combine(fed, start, states, sizes, dp, rnd)
        network.load_state_dict(
            aggregate(start, states, sizes) if combined is None else aggregate.step(start, combined)
        )
        row: dict[str, Any] = {
            "epoch": rnd,
            "loss": float(np.average(losses, weights=sizes)),
            "clients": len(chosen),
            "samples": int(sum(sizes)),
            **({"epsilon": dp.epsilon()} if dp is not None else {}),  # spent so far, client level
        }
        if prepared.val is not None and len(prepared.val) > 0:
            values = evaluate(
                network,
                prepared.val,
                metrics=list(spec.train.metrics),
                loss=spec.train.loss,
                task=spec.task,
                num_classes=prepared.num_classes,
            )
            row.update({f"val_{k}": v for k, v in values.items()})
        row["time_s"] = time.perf_counter() - t0
        history.append(row)
        log.info("round %d/%d: %s", rnd, fed.rounds, {k: v for k, v in row.items() if isinstance(v, float)})
        on_round(rnd, row)
    privacy = None if dp is None else dp.report()
    spent = {} if privacy is None else {"epsilon": privacy["epsilon"], "delta": privacy["delta"]}
    return FitResult(
        history=history,
        best_epoch=None,
        stopped_early=False,
        runtime={**runtime, "federated": {"mode": "simulation", **lineage_of(fed), **spent}},
        train_time_s=time.perf_counter() - began,
        privacy=privacy,
    )
