"""Secure aggregation in a deployed federation over 127.0.0.1: two `modelyard federated join` processes
and a third client (played here over HTTP) that shares its keys and then dies before its masked
update arrives.

The survivors' shares remove its pair masks: the registered weights are the FedAvg mean of the two
survivors' weights (recomputed here from the round's published global weights with the clients'
own step), and the aggregator's folder holds only masked vectors of the clients. One round: the
aggregator waits out the dead client's masked update (round_timeout_s 20 s, time for the two live
clients' fits on a loaded machine)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_numpy
from safetensors.torch import load

from modelyard.federated.deployed_secure import context_of
from modelyard.federated.join import client_data
from modelyard.federated.rounds import client_fit
from modelyard.federated.secure import decode
from modelyard.federated.secure_relay import b64, unb64
from modelyard.federated.secure_round import SecureClient
from modelyard.federated.strategies import weighted_mean
from modelyard.nn import build_model
from modelyard.server.client import ServerClient
from modelyard.spec import load_spec
from modelyard.store import ModelStore, RunStore
from tests.integration.test_federated_deployed import finish, setup, start  # noqa: F401 (the fixture)
from tests.support.server_process import Server

pytestmark = pytest.mark.slow  # a federation of 3 clients whose round waits out a dead client: ~40 s


def _until(api: ServerClient, want: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.request("GET", "/v1/federated/status").json()
        if want(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"timed out; last status {status}")


def test_a_client_that_dies_after_sharing_its_keys_is_recovered(setup: dict[str, Any]) -> None:  # noqa: F811
    server: Server = setup["server"]
    fed, procs = start(setup, joins=2, rounds=1, quorum=2, round_timeout_s=20, secure_aggregation={"threshold": 2})
    folder = setup["home"] / "federations" / fed["id"]
    with ServerClient(server.url, fed["tokens"][2]["token"]) as api:  # client 2, played here
        _until(api, lambda s: s["status"] != "waiting")
        api.request("POST", "/v1/federated/ready")
        _until(api, lambda s: s.get("phase") == "keys" and s["round"] == 1)
        me = SecureClient(2, threshold=2, context=context_of(fed["id"], 1))
        channel, mask = me.advertise()
        api.request("POST", "/v1/federated/secure/1/keys", json={"channel": b64(channel), "mask": b64(mask)})
        _until(api, lambda s: s.get("phase") == "shares" and s["round"] == 1)
        given = api.request("GET", "/v1/federated/secure/1/shares").json()["keys"]
        envelopes = me.share_keys({int(u): (unb64(c, "c"), unb64(m, "m")) for u, (c, m) in given.items()})
        api.request(
            "POST", "/v1/federated/secure/1/shares", json={"envelopes": {str(v): b64(e) for v, e in envelopes.items()}}
        )
        # ... and dies: no masked update, no answer, no later round.
    job = finish(setup, fed)
    logs = [(setup["root"] / f"{fed['id']}-{k}.log").read_text() for k in range(2)]
    assert job["status"] == "succeeded", (job.get("error"), server.output()[-3000:], logs)
    assert [p.wait(60) for p in procs] == [0, 0], logs
    history = RunStore(setup["home"]).get(job["run_id"]).history
    assert [(row["epoch"], row["clients"], row["dropped"]) for row in history] == [(1, 2, 1)]
    # Client 2 shared its keys, so the survivors' masked vectors carry its pair masks.
    assert sorted(p.name for p in (folder / "secure-1-shares.closed").iterdir()) == [f"client-{k}" for k in range(3)]
    masked = [load_numpy((folder / "secure-1-masked.closed" / f"client-{k}").read_bytes())["masked"] for k in (0, 1)]
    assert all(np.median(np.abs(decode(m))) > 1e6 for m in masked)  # nothing near a weight update is stored

    # The reference: the FedAvg mean of clients 0 and 1, from the round's global weights.
    task = json.loads((folder / "task.json").read_text())
    spec = load_spec(task["spec"])
    network = build_model(spec.model, loss=spec.train.loss.type)
    data = [client_data(spec, task["meta"], setup["clients"] / f"client-{k}.npz") for k in (0, 1)]
    loaded = load((folder / "global-1.safetensors").read_bytes())
    start_weights = {name: loaded[name] for name, _, _ in task["layout"]}
    states = [
        client_fit(spec, network, start_weights, prepared, split, rnd=1, client=k)[0]
        for k, (prepared, split) in zip((0, 1), data)
    ]
    want = weighted_mean(states, [len(split) for _, split in data])
    got = ModelStore(setup["home"]).get(job["model_ref"]).load_state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)
    assert any((got[k] - start_weights[k]).abs().max() > 1e-3 for k in got)  # the round moved the weights
