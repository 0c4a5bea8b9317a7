"""The aggregator of a deployed federation: the simulation's rounds with the clients elsewhere.

It runs in a control-plane job worker (``workflow.train`` of the federation's job hands it the
run, the network and the spec's own data: the aggregator's, which fits the preprocessing every
client applies, and gives the validation rows of the round curves and the test split the
registered version is judged on). Each round it publishes the global weights and the drawn
clients (``federation.Federation``), waits until every drawn client's update has arrived, or
until ``round_timeout_s`` has passed with at least ``quorum`` of them, closes the round and
combines what arrived with ``rounds.RoundAggregator``, the simulation's own step (strategy, dp).
Fewer than ``quorum`` updates at the timeout fail the federation with a line saying so. Under
``secure_aggregation`` a round is ``deployed_secure.aggregate_round``'s four phases instead, and the
aggregator only ever holds the clients' masked vectors.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from modelyard.data.prepare import Prepared
from modelyard.errors import TrainingError
from modelyard.federated.federation import Federation
from modelyard.federated.rounds import RoundAggregator, state_of
from modelyard.federated.simulation import finished
from modelyard.spec import Spec
from modelyard.training import FitResult

__all__ = ["run_deployed", "POLL_S"]

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the aggregator looks for updates


def _task(spec: Spec, prepared: Prepared, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What a client needs besides its data: the spec and the aggregator's fitted preprocessing."""
    from modelyard.workflow import model_meta

    layout = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]
    return {"spec": spec.to_dict(), "meta": model_meta(prepared, spec), "layout": layout}


def _weights(state: dict[str, torch.Tensor], rnd: int) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()}, metadata={"round": str(rnd)})


def _read_update(path: Path) -> tuple[dict[str, torch.Tensor], int, float]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    return state, int(meta["samples"]), float(meta.get("loss", "nan"))


def run_deployed(
    spec: Spec,
    network: torch.nn.Module,
    prepared: Prepared,
    on_round: Callable[[int, dict[str, Any]], None],
    *,
    federation: str,
    home: str | Path | None,
) -> FitResult:
    """Run the federation's rounds with its clients; ``network`` ends holding the last global weights."""
    fed_spec = spec.federated
    assert fed_spec is not None
    fed = Federation.open(home, federation)
    server = RoundAggregator(spec)
    history: list[dict[str, Any]] = []
    began = time.perf_counter()
    try:
        fed.write_task(_task(spec, prepared, state_of(network)))
        # Round 1's timeout starts once a quorum of clients is there (Flower's min_available_clients):
        # until then the federation waits, for as long as its job is not cancelled.
        while len(joined := fed.joined()) < fed_spec.min_updates:
            fed.set_state(
                status="joining", round=0, rounds=fed_spec.rounds, joined=len(joined), quorum=fed_spec.min_updates
            )
            time.sleep(POLL_S * 5)
        for rnd in range(1, fed_spec.rounds + 1):
            t0 = time.perf_counter()
            chosen = server.draw()
            start = state_of(network)
            if fed_spec.secure_aggregation is not None:  # four phases through secure_relay's folders
                from modelyard.federated.deployed_secure import aggregate_round

                fed.publish_weights(rnd, _weights(start, rnd))
                combined, senders, sizes, losses = aggregate_round(fed, server, rnd, chosen, start)
                network.load_state_dict(combined)
                history.append(server.row(rnd, network, prepared, losses, sizes, t0))
                history[-1]["dropped"] = len(chosen) - len(senders)
                log.info(
                    "federation %s round %d/%d: %d of %d clients",
                    fed.id,
                    rnd,
                    fed_spec.rounds,
                    len(senders),
                    len(chosen),
                )
                on_round(rnd, history[-1])
                continue
            fed.open_round(rnd, _weights(start, rnd), chosen, fed_spec.timeout_s, fed_spec.rounds)
            deadline = time.monotonic() + fed_spec.timeout_s
            while len(fed.received(rnd)) < len(chosen) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            files = fed.close_round(rnd)
            if len(files) < fed_spec.min_updates:
                raise TrainingError(
                    f"Federation {fed.id}, round {rnd}: {len(files)} of {len(chosen)} drawn clients sent an update "
                    f"within round_timeout_s ({fed_spec.timeout_s:g} s), below the quorum of {fed_spec.min_updates}; "
                    "start more clients (`modelyard federated join`) or lower federated.quorum"
                )
            states, sizes, losses = [], [], []
            for k in sorted(files):  # client order, as the simulation sums them
                state, samples, loss = _read_update(files[k])
                states.append(state)
                sizes.append(samples)
                losses.append(loss)
            network.load_state_dict(server.combine(start, states, sizes, rnd))
            row = server.row(rnd, network, prepared, losses, sizes, t0)
            row["dropped"] = len(chosen) - len(files)
            history.append(row)
            log.info(
                "federation %s round %d/%d: %d of %d clients", fed.id, rnd, fed_spec.rounds, len(files), len(chosen)
            )
            on_round(rnd, row)
    except BaseException as exc:  # the clients stop waiting: a failed, cancelled or interrupted federation
        message = exc.message if isinstance(exc, TrainingError) else f"stopped ({type(exc).__name__})"
        fed.set_state(status="failed", round=len(history), rounds=fed_spec.rounds, message=message)
        raise
    # "finished" once the job has registered the version (the route reads the job)
    fed.set_state(status="registering", round=fed_spec.rounds, rounds=fed_spec.rounds)
    return finished(fed_spec, server, history, {}, began)
