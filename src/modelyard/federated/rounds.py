"""The steps of a federated round that the simulation and the deployed mode share.

``client_fit`` is one client's local training (``training.fit`` on its own split, from the
round's global weights, FedProx's proximal term when the strategy asks for it): the simulation
runs it for every drawn client in one process, ``modelyard federated join`` runs it in the
client's own process. ``RoundAggregator`` is the server side: the seeded client draw, the
strategy (FedAvg, FedProx, FedAdam), client-level DP (clipped, noised update vectors) and
secure aggregation (masked ones), and the round's history row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import numpy as np
import torch

from modelyard import fast_paths
from modelyard.data.prepare import Prepared, Split
from modelyard.federated.spec import FederatedSpec
from modelyard.federated.strategies import Aggregator, State, proximal_term
from modelyard.federated.updates import Layout, clip
from modelyard.spec import Spec
from modelyard.training import FitResult, evaluate, fit
from modelyard.training.losses import LOSSES

__all__ = ["federated_seed", "client_fit", "state_of", "update_vector", "mean_of_sum", "RoundAggregator"]


def federated_seed(spec: Spec) -> int:
    """The partition's, the client draw's and the local fits' seed: ``federated.seed`` or the spec's."""
    fed = spec.federated
    assert fed is not None
    return spec.seed if fed.seed is None else fed.seed


def state_of(network: torch.nn.Module) -> State:
    return {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}


def client_fit(
    spec: Spec, network: torch.nn.Module, start: State, prepared: Prepared, split: Split, *, rnd: int, client: int
) -> tuple[State, float, FitResult]:
    """Client ``client``'s round ``rnd``: ``start`` trained on ``split`` for ``local_epochs`` epochs.

    ``prepared`` gives the label metadata (``num_classes``, the pipeline); its splits are not used.
    The seed depends on the federation's seed, the round and the client's index only, so the same
    client gives the same weights in the simulation and in its own process.
    """
    fed = spec.federated
    assert fed is not None
    seed = federated_seed(spec)
    local = spec.train.model_copy(update={"epochs": fed.local_epochs, "checkpoint": False, "early_stopping": None})
    network.load_state_dict(start)
    loss_fn, guard = None, contextlib.nullcontext()
    if fed.strategy.type == "fedprox":
        anchor = {n: p.detach().clone() for n, p in network.named_parameters()}
        mu = float(fed.strategy.mu or 0.0)
        base_loss = LOSSES.build(spec.train.loss)

        def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return base_loss(out, y) + proximal_term(network, anchor, mu)

        # The tape-free dense step differentiates the loss by the outputs only; the proximal
        # term is a function of the weights, so FedProx clients train through autograd.
        guard = fast_paths.disabled()
    data = dataclasses.replace(prepared, train=split, val=None, test=None)
    with guard:
        result = fit(network, data, local, seed=seed * 1_000_003 + rnd * 1009 + client, progress=False, loss_fn=loss_fn)
    return state_of(network), float(result.history[-1]["loss"]), result


class RoundAggregator:
    """The server's side of the rounds: which clients a round draws and how their weights combine."""

    def __init__(self, spec: Spec) -> None:
        fed = spec.federated
        assert fed is not None
        self.spec, self.fed = spec, fed
        self.strategy = Aggregator(fed.strategy)
        self.dp = None
        if fed.dp is not None:
            from modelyard.federated.dp import ClientDP

            self.dp = ClientDP(fed, seed=federated_seed(spec))
        self._draw = np.random.default_rng(federated_seed(spec) + 1)
        self._drops = np.random.default_rng(federated_seed(spec) + 2)  # its own stream: the draw stays as without

    def draw(self) -> list[int]:
        """The clients of the next round (all of them unless ``clients_per_round`` is smaller), sorted."""
        return sorted(self._draw.choice(self.fed.clients, size=self.fed.per_round, replace=False).tolist())

    def drop(self, chosen: list[int]) -> list[int]:
        """The drawn clients that drop this round in a simulation: ``floor(dropout * drawn)`` of them, seeded."""
        count = int(self.fed.dropout * len(chosen))
        return sorted(self._drops.choice(chosen, size=count, replace=False).tolist()) if count else []

    def combine(
        self,
        start: State,
        states: list[State],
        sizes: list[int],
        rnd: int,
        *,
        senders: list[int] | None = None,
        drawn: list[int] | None = None,
    ) -> State:
        """The next global weights from the round's client weights (in client order) and sample counts.

        ``senders`` are the clients of ``states`` and ``drawn`` the round's clients, those that dropped
        included (secure aggregation removes their masks); by default the states' positions, none dropped.
        """
        senders = list(range(len(states))) if senders is None else senders
        drawn = senders if drawn is None else drawn
        combined = _combine(self.fed, start, dict(zip(senders, states)), sizes, self.dp, rnd, drawn)
        return self.strategy(start, states, sizes) if combined is None else self.strategy.step(start, combined)

    def combine_sum(self, start: State, total: np.ndarray, count: int) -> State:
        """The next global weights from the unmasked sum of ``count`` clients' update vectors (``update_vector``)."""
        return self.strategy.step(start, mean_of_sum(self.fed, Layout.of(start), start, total, count, self.dp))

    def row(
        self, rnd: int, network: torch.nn.Module, prepared: Prepared, losses: list[float], sizes: list[int], t0: float
    ) -> dict[str, Any]:
        """The round's history row: the clients' mean local loss, counts, epsilon, the global model's val metrics."""
        spec = self.spec
        row: dict[str, Any] = {
            "epoch": rnd,
            "loss": float(np.average(losses, weights=sizes)),
            "clients": len(sizes),
            "samples": int(sum(sizes)),
            **({"epsilon": self.dp.epsilon()} if self.dp is not None else {}),  # spent so far, client level
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
        return row

    def privacy(self) -> dict[str, Any] | None:
        return None if self.dp is None else self.dp.report()


def update_vector(fed: FederatedSpec, layout: Layout, start: State, state: State, size: int) -> np.ndarray:
    """What a client contributes to the round's sum: its update (clipped under dp) times its weight, then the weight.

    DP weighs clients equally (a sample-weighted mean would let one client move it by more than S/m);
    otherwise each client sends size * update and its size, and the server divides the two sums.
    """
    update = layout.update(state, start)
    weight = 1.0 if fed.dp is not None else float(size)
    if fed.dp is not None:
        update = clip(update, fed.dp.max_update_norm)
    return np.append(update * weight, weight)


def mean_of_sum(fed: FederatedSpec, layout: Layout, start: State, total: np.ndarray, count: int, dp: Any) -> State:
    """The clients' mean weights from the sum of ``count`` update vectors (noised under dp)."""
    mean = dp.noised_mean(total[:-1], count) if dp is not None else total[:-1] / total[-1]
    return layout.apply(start, mean)


def _combine(
    fed: FederatedSpec,
    start: State,
    states: dict[int, State],
    sizes: list[int],
    dp: Any,
    rnd: int,
    drawn: list[int] | None = None,
) -> State | None:
    """The clients' mean weights through update vectors (clipped and noised under dp, masked under
    secure aggregation); None when neither is asked for (the strategy averages the states itself).
    ``states`` by client index; ``drawn`` the round's clients, those that dropped before sending included."""
    if dp is None and fed.secure_aggregation is None:
        return None
    layout = Layout.of(start)
    vectors = {k: update_vector(fed, layout, start, state, size) for (k, state), size in zip(states.items(), sizes)}
    if fed.secure_aggregation is not None:
        from modelyard.federated.secure_round import secure_sum

        threshold = fed.secure_aggregation.threshold
        assert threshold is not None  # the spec sets its default
        drawn = sorted(vectors) if drawn is None else drawn
        # the server's side only ever holds masked vectors (SecureServer); the clients' sides run here too
        total = secure_sum(vectors, drawn, threshold=threshold, context=b"round %d" % rnd, name=f"round {rnd}")
    else:
        total = np.sum(list(vectors.values()), axis=0)
    return mean_of_sum(fed, layout, start, total, len(states), dp)
