"""The deployed mode's aggregator without a server: a round closes at its timeout with the quorum's
updates (combined by the simulation's step), fails below the quorum with one line, a secure round
recovers a client that dies after sharing its keys or fails below its threshold, and the spec's
deployed options are checked before anything is stored."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_numpy
from safetensors.torch import save

import modelyard
from modelyard.errors import SpecError, TrainingError
from modelyard.federated.deployed import run_deployed
from modelyard.federated.federation import Federation, check_update, new_federation
from modelyard.spec import load_spec
from modelyard.store import RunStore
from modelyard.workflow import build_checked
from tests.support.compression import digits_spec


def deployed(**section: Any) -> dict[str, Any]:
    spec = digits_spec(epochs=1, hidden=(8,))
    spec["federated"] = {"clients": 2, "rounds": 1, "mode": "deployed", "round_timeout_s": 0.5, **section}
    return spec


def wait_open(fed: Federation) -> None:
    """Until round 1 is open: its state, written after its folder (polling the folder races the state)."""
    while fed.state().get("status") != "open":
        time.sleep(0.01)


def aggregate(home: Path, raw: dict[str, Any], answer: Any = None) -> tuple[Any, Federation, Any]:
    """``run_deployed`` with both clients joined; ``answer(fed)`` plays client 0 in a thread."""
    spec = load_spec(raw)
    network, prepared = build_checked(spec)
    fed, clients = new_federation(home, spec.to_dict(), 2)
    for c in clients:
        fed.mark_joined(Federation.client_for(home, c["token"])[1])
    if answer is not None:
        threading.Thread(target=answer, args=(fed, Federation.client_for(home, clients[0]["token"])[1])).start()
    rows: list[dict[str, Any]] = []
    result = run_deployed(spec, network, prepared, lambda r, row: rows.append(row), federation=fed.id, home=home)
    return result, fed, (network, rows)


def test_a_round_closes_at_its_timeout_with_the_quorums_updates(home: Path) -> None:
    sent: dict[str, torch.Tensor] = {}

    def client0(fed: Federation, me: Any) -> None:
        wait_open(fed)
        layout = fed.task()["layout"]
        sent.update({k: torch.full(shape, 0.25) for k, shape, _ in layout})
        fed.accept(me, 1, check_update(save(sent), layout, samples="7", loss="0.5"))

    began = time.monotonic()  # 2 s: time for client 0's thread on a loaded machine
    result, fed, (network, rows) = aggregate(home, deployed(quorum=1, round_timeout_s=2), client0)
    assert time.monotonic() - began >= 2  # it waited for client 1 until the timeout
    # FedAvg of one update is that update: the global model is client 0's weights.
    got = network.state_dict()
    assert all(torch.equal(got[k], sent[k]) for k in got)
    assert rows[0]["clients"] == 1 and rows[0]["dropped"] == 1 and rows[0]["samples"] == 7 and rows[0]["loss"] == 0.5
    assert result.runtime["federated"]["quorum"] == 1 and result.runtime["federated"]["mode"] == "deployed"
    assert fed.state()["status"] == "registering"


def test_fewer_updates_than_the_quorum_fail_the_federation_in_one_line(home: Path) -> None:
    with pytest.raises(
        TrainingError,
        match=r"round 1: 0 of 2 drawn clients sent an update within round_timeout_s \(0.5 s\), below the quorum of 2",
    ) as info:
        aggregate(home, deployed())
    assert "\n" not in info.value.message
    fed = Federation.all(home)[0]
    assert fed.state()["status"] == "failed" and "quorum of 2" in fed.state()["message"]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"mode": "simulation", "round_timeout_s": None, "quorum": 2}, "quorum: applies to mode deployed"),
        ({"mode": "simulation", "round_timeout_s": 5}, "round_timeout_s: applies to mode deployed"),
        ({"quorum": 3}, "quorum: expected at most clients_per_round (2)"),
        ({"quorum": True}, "quorum: expected a positive integer, received True (bool)"),
        ({"partition": {"dirichlet": 0.5}}, "partition: a deployed federation's clients hold their own data"),
        (
            {"secure_aggregation": {"threshold": 2}, "quorum": 1},
            "quorum: expected at least secure_aggregation.threshold (2) with secure aggregation",
        ),
        ({"dropout": 0.2}, "dropout: applies to mode simulation (a deployed client drops on its own)"),
    ],
)
def test_bad_deployed_options_are_one_line(section: dict[str, Any], expected: str) -> None:
    raw = deployed(**section)
    raw["federated"] = {k: v for k, v in raw["federated"].items() if v is not None}
    with pytest.raises(SpecError) as info:
        load_spec(raw)
    assert expected in info.value.message and "\n" not in info.value.message


def test_modelyard_train_refuses_a_deployed_spec_before_storing_anything(home: Path) -> None:
    with pytest.raises(SpecError, match="modelyard federated start SPEC"):
        modelyard.train(deployed(), home=home, progress=False)
    assert RunStore(home).list() == []


def test_client_level_dp_in_the_deployed_mode_is_the_simulations_step(home: Path) -> None:
    """One client at quorum 1: the new global weights are start + clip(update) + the round's noise."""
    from modelyard.federated.dp import ClientDP
    from modelyard.federated.updates import Layout, clip

    sent: dict[str, torch.Tensor] = {}
    start: dict[str, torch.Tensor] = {}

    def client0(fed: Federation, me: Any) -> None:
        wait_open(fed)
        from safetensors.torch import load

        start.update(load(fed.global_weights(1)))
        layout = fed.task()["layout"]
        sent.update({k: v + 0.5 for k, v in start.items()})  # an update of norm far above max_update_norm
        fed.accept(me, 1, check_update(save(sent), layout, samples="7", loss="0.5"))

    dp = {"max_update_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-3}
    result, _, (network, rows) = aggregate(home, deployed(quorum=1, round_timeout_s=2, dp=dp), client0)
    spec = load_spec(deployed(quorum=1, round_timeout_s=2, dp=dp))
    start = {k: start[k] for k in network.state_dict()}  # the vector's order: the state dict's, not the file's
    layout = Layout.of(start)
    reference = ClientDP(spec.federated, seed=spec.seed)
    want = layout.apply(start, reference.noised_mean(clip(layout.update(sent, start), 1.0), 1))
    got = network.state_dict()
    for k in got:
        torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=0)
    assert rows[0]["epsilon"] == pytest.approx(reference.epsilon()) and rows[0]["epsilon"] > 0
    lineage = result.runtime["federated"]
    assert lineage["dp"]["noise_multiplier"] == 1.0 and lineage["epsilon"] == pytest.approx(reference.epsilon())


def test_join_gives_up_on_a_server_that_does_not_answer_in_one_line(tmp_path: Path) -> None:
    from tests.support.cli import run_cli
    from tests.support.server_process import free_port

    data = tmp_path / "mine.npz"
    data.write_bytes(b"")
    url = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    out = run_cli("federated", "join", url, "--data", str(data), "--token", "myf_x", "--patience-s", "1")
    assert out.code != 0 and "No modelyard server at" in out.err and "giving up" in out.err
    assert out.err.strip().count("\n") == 0 and "asking again" in out.out
    assert 1 <= time.monotonic() - began < 20


def test_a_secure_round_below_its_threshold_fails_the_federation_in_one_line(home: Path) -> None:
    """No client posts its keys: the keys phase closes at its timeout with 0 of the 2 needed."""
    with pytest.raises(TrainingError) as info:
        aggregate(home, deployed(secure_aggregation={"threshold": 2}))
    message = info.value.message
    assert "round 1: 0 clients advertised their keys, below secure_aggregation.threshold (2)" in message
    assert "\n" not in message
    fed = Federation.all(home)[0]
    assert fed.state()["status"] == "failed" and "advertised their keys" in fed.state()["message"]
    assert [p.name for p in (fed.folder / "secure-1-keys.closed").iterdir()] == []


def test_a_secure_round_recovers_a_client_that_dies_after_sharing_its_keys(home: Path) -> None:
    """Three clients in threads speak the four phases through the folder; client 2 stops after its shares.
    The new global weights are the sample-weighted mean of clients 0 and 1's weights."""
    from modelyard.federated import secure_relay as relay
    from modelyard.federated.deployed_secure import context_of
    from modelyard.federated.rounds import update_vector
    from modelyard.federated.secure_round import SecureClient
    from modelyard.federated.strategies import weighted_mean
    from modelyard.federated.updates import Layout

    raw = deployed(
        clients=3, secure_aggregation={"threshold": 2}, quorum=2, round_timeout_s=3
    )  # 3 s: time for the threads on a loaded machine
    spec = load_spec(raw)
    network, prepared = build_checked(spec)
    fed, clients = new_federation(home, spec.to_dict(), 3)
    members = [Federation.client_for(home, c["token"])[1] for c in clients]
    for m in members:
        fed.mark_joined(m)
    sent: dict[int, dict[str, torch.Tensor]] = {}

    def wait(phase: str) -> None:
        while not (fed.state().get("phase") == phase and fed.state().get("status") == "open"):
            time.sleep(0.005)

    def play(k: int) -> None:
        me = SecureClient(k, threshold=2, context=context_of(fed.id, 1))
        wait("keys")
        channel, mask = me.advertise()
        body = json.dumps({"channel": relay.b64(channel), "mask": relay.b64(mask)}).encode()
        relay.post(fed, members[k], 1, "keys", body)
        wait("shares")
        keys = relay.published(fed, members[k], 1, "shares")["keys"]
        envelopes = me.share_keys({int(u): (relay.unb64(c, "c"), relay.unb64(m, "m")) for u, (c, m) in keys.items()})
        relay.post(
            fed,
            members[k],
            1,
            "shares",
            json.dumps({"envelopes": {str(v): relay.b64(e) for v, e in envelopes.items()}}).encode(),
        )
        if k == 2:
            return  # dies before its masked update
        wait("masked")
        inbox = relay.published(fed, members[k], 1, "masked")["envelopes"]
        from safetensors.torch import load

        start = load(fed.global_weights(1))
        start = {name: start[name] for name, _, _ in fed.task()["layout"]}
        sent[k] = {n: v + 0.1 * (k + 1) if v.is_floating_point() else v for n, v in start.items()}
        vector = update_vector(spec.federated, Layout.of(start), start, sent[k], 10 * (k + 1))
        masked = me.mask(vector, {int(u): relay.unb64(e, "e") for u, e in inbox.items()})
        relay.post(
            fed,
            members[k],
            1,
            "masked",
            save_numpy({"masked": masked}, metadata={"samples": str(10 * (k + 1)), "loss": "0.5"}),
        )
        wait("answers")
        survivors = relay.published(fed, members[k], 1, "answers")["survivors"]
        answers = {str(u): [kind, x, relay.b64(s)] for u, (kind, x, s) in me.reveal(survivors).items()}
        relay.post(fed, members[k], 1, "answers", json.dumps({"answers": answers}).encode())

    threads = [threading.Thread(target=play, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    rows: list[dict[str, Any]] = []
    run_deployed(spec, network, prepared, lambda r, row: rows.append(row), federation=fed.id, home=home)
    for t in threads:
        t.join(10)
    want = weighted_mean([sent[0], sent[1]], [10, 20])
    got = network.state_dict()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)
    assert rows[0]["clients"] == 2 and rows[0]["dropped"] == 1 and rows[0]["samples"] == 30
    stored = [(fed.folder / "secure-1-masked.closed" / f"client-{k}").read_bytes() for k in (0, 1)]
    from safetensors.numpy import load as load_numpy

    from modelyard.federated.secure import decode

    assert all(np.median(np.abs(decode(load_numpy(b)["masked"]))) > 1e6 for b in stored)


def test_a_low_order_public_key_is_refused_in_one_line() -> None:
    import base64

    from modelyard.errors import InvalidRequestError
    from modelyard.federated import secure_relay
    from modelyard.federated.secure import KeyPair

    good = base64.b64encode(KeyPair().public).decode()
    zero = base64.b64encode(bytes(32)).decode()  # the identity point: every shared secret with it is 0
    body = json.dumps({"channel": good, "mask": zero}).encode()
    with pytest.raises(InvalidRequestError, match=r"^Invalid `mask`: expected an X25519 public key") as info:
        secure_relay.check_message("keys", body, weights=3, samples=None, loss=None)
    assert info.value.field == "mask" and "\n" not in info.value.message
    stored = secure_relay.check_message(
        "keys", json.dumps({"channel": good, "mask": good}).encode(), weights=3, samples=None, loss=None
    )
    assert json.loads(stored) == {"channel": good, "mask": good}
