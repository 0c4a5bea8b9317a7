"""A deployed secure round: the aggregator's ``SecureServer`` and each join process's ``SecureClient``.

``aggregate_round`` (the aggregator's job) opens the four phases of ``secure_relay.py`` in turn and
feeds what arrives to ``SecureServer``; ``Participant`` (``modelyard federated join``) answers each
phase it is in with ``SecureClient``, training its update when the masked phase opens. A client
that dies after sharing its keys is a dropped client: its pair masks come off with the survivors'
shares, as in the simulation. The context both sides bind keys and envelopes to is the
federation's id and the round.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from modelyard.errors import TrainingError
from modelyard.federated import secure_relay as relay
from modelyard.federated.federation import Federation
from modelyard.federated.rounds import RoundAggregator, State, client_fit, update_vector
from modelyard.federated.secure_round import SecureClient, SecureServer
from modelyard.federated.updates import Layout

__all__ = ["aggregate_round", "Participant", "context_of"]


def context_of(federation: str, rnd: int) -> bytes:
    return b"federation %s round %d" % (federation.encode("ascii"), rnd)


def _metadata(data: bytes) -> dict[str, str]:
    """A safetensors body's ``__metadata__`` (its first 8 bytes are the JSON header's length)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__", {})


def aggregate_round(
    fed: Federation, server: RoundAggregator, rnd: int, chosen: list[int], start: State
) -> tuple[State, list[int], list[int], list[float]]:
    """One secure round with the clients of ``chosen``: the next global weights, the survivors, their sample
    counts and local losses. Fewer than the threshold (or the quorum) at a phase's timeout fail it in one line."""
    from safetensors.numpy import load

    spec = server.fed
    assert spec.secure_aggregation is not None and spec.secure_aggregation.threshold is not None
    timeout, rounds = spec.timeout_s, spec.rounds
    secure = SecureServer(
        threshold=spec.secure_aggregation.threshold, context=context_of(fed.id, rnd), name=f"round {rnd}"
    )

    def phase(name: str, clients: list[int], inputs: Any) -> dict[int, bytes]:
        relay.open_phase(fed, rnd, name, clients, timeout, rounds, inputs)
        return relay.close_phase(fed, rnd, name, clients, timeout)

    sent = {u: json.loads(m) for u, m in phase("keys", chosen, {}).items()}
    keys = secure.relay_keys(
        {u: (relay.unb64(m["channel"], "channel"), relay.unb64(m["mask"], "mask")) for u, m in sent.items()}
    )
    relayed = {str(u): [relay.b64(c), relay.b64(m)] for u, (c, m) in keys.items()}
    shares = {u: json.loads(m)["envelopes"] for u, m in phase("shares", sorted(keys), {"keys": relayed}).items()}
    inbox = secure.relay_shares(
        {u: {int(v): relay.unb64(e, "envelope") for v, e in s.items()} for u, s in shares.items()}
    )
    held = {str(v): {str(u): relay.b64(e) for u, e in got.items()} for v, got in inbox.items()}
    arrived = phase("masked", sorted(inbox), held)
    masked = {u: load(data)["masked"] for u, data in arrived.items()}
    survivors = secure.collect(masked)
    if len(survivors) < spec.min_updates:
        raise TrainingError(
            f"Federation {fed.id}, round {rnd}: {len(survivors)} of {len(chosen)} drawn clients sent an update "
            f"within round_timeout_s ({timeout:g} s), below the quorum of {spec.min_updates}; "
            "start more clients (`modelyard federated join`) or lower federated.quorum"
        )
    answers = phase("answers", survivors, {"survivors": survivors})
    parsed = {
        v: {int(u): (k, int(x), relay.unb64(s, "share", 32)) for u, (k, x, s) in json.loads(m)["answers"].items()}
        for v, m in answers.items()
    }
    total = secure.unmask(parsed)
    meta = [_metadata(arrived[u]) for u in survivors]
    sizes = [int(m["samples"]) for m in meta]
    losses = [float(m.get("loss", "nan")) for m in meta]
    return server.combine_sum(start, total, len(survivors)), survivors, sizes, losses


class Participant:
    """A join process's side of the secure rounds it is drawn for (one ``SecureClient`` per round)."""

    def __init__(self, api: Any, spec: Any, task: dict[str, Any], me: int, federation: str, data: Any) -> None:
        self.api, self.spec, self.task, self.me, self.federation = api, spec, task, me, federation
        self.network, self.prepared, self.split = data
        self.round, self.client = 0, None

    def step(self, rnd: int, phase: str, say: Callable[[str], None]) -> None:
        from safetensors.numpy import save
        from safetensors.torch import load

        path = f"/v1/federated/secure/{rnd}/{phase}"
        threshold = self.spec.federated.secure_aggregation.threshold
        if phase == "keys":
            self.round = rnd
            self.client = SecureClient(self.me, threshold=threshold, context=context_of(self.federation, rnd))
            channel, mask = self.client.advertise()
            self.api.request("POST", path, json={"channel": relay.b64(channel), "mask": relay.b64(mask)})
            return
        if self.round != rnd or self.client is None:
            return  # it joined after this round's keys: it takes part from the next round on
        given = self.api.request("GET", path).json()
        if phase == "shares":
            keys = {int(u): (relay.unb64(c, "channel"), relay.unb64(m, "mask")) for u, (c, m) in given["keys"].items()}
            envelopes = self.client.share_keys(keys)
            self.api.request("POST", path, json={"envelopes": {str(v): relay.b64(e) for v, e in envelopes.items()}})
            say(f"round {rnd}: shared its keys with {len(keys)} clients")
        elif phase == "masked":
            inbox = {int(u): relay.unb64(e, "envelope") for u, e in given["envelopes"].items()}
            loaded = load(self.api.request("GET", f"/v1/federated/weights/{rnd}").content)
            start = {name: loaded[name] for name, _, _ in self.task["layout"]}  # the aggregator's order
            state, loss, _ = client_fit(
                self.spec, self.network, start, self.prepared, self.split, rnd=rnd, client=self.me
            )
            vector = update_vector(self.spec.federated, Layout.of(start), start, state, len(self.split))
            body = save({"masked": np.ascontiguousarray(self.client.mask(vector, inbox))})
            headers = {
                "X-Samples": str(len(self.split)),
                "X-Loss": repr(loss),
                "Content-Type": "application/octet-stream",
            }
            self.api.request("POST", path, content=body, headers=headers)
            say(f"round {rnd}: sent the masked update of {len(self.split)} samples (local loss {loss:.4f})")
        elif phase == "answers":
            answers = self.client.reveal([int(v) for v in given["survivors"]])
            body = {str(u): [k, x, relay.b64(s)] for u, (k, x, s) in answers.items()}
            self.api.request("POST", path, json={"answers": body})
            self.client = None  # this round's secrets are spent
