"""A deployed federation over 127.0.0.1: a real `modelyard server` (admin token required) runs the
aggregator as a job, three `modelyard federated join` processes each hold their own npz file.

Without a kill the registered weights equal the simulation's with the same partition and seed;
with one client SIGKILLed in round 1 and quorum 2 the rounds close at their timeout with the two
others and the federation still registers a version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import yaml

import modelyard
from modelyard.data.sources import load_source
from modelyard.federated.partition import partition
from modelyard.federated.spec import PartitionSpec
from modelyard.server.auth.tokens import TokenStore
from modelyard.spec import load_spec
from modelyard.store import ModelStore, RunStore
from tests.support.cli import run_cli, run_process
from tests.support.server_process import SRC, Server, start_server, wait_for, workers_alive

pytestmark = pytest.mark.slow  # two federations of 3 client processes: about a minute

CLIENTS = 3


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    raw = load_source(load_spec({**_spec("x"), "data": {"source": "digits"}}).data.source, seed=0)
    return np.asarray(raw.x_train, dtype=np.float32), np.asarray(raw.y_train)


def _spec(path: str, **section: Any) -> dict[str, Any]:
    return {
        "name": "fed",
        "seed": 0,
        "data": {"source": "npz", "path": path, "x_test": "x_test", "y_test": "y_test", "preprocess": ["standardize"]},
        "model": {
            "input": [64],
            "layers": [{"dense": 32, "activation": "relu"}, {"dense": 10, "activation": "softmax"}],
        },
        "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 32, "epochs": 1, "metrics": ["accuracy"]},
        "federated": {"clients": CLIENTS, "rounds": 3, "local_epochs": 1, "strategy": "fedavg", **section},
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fed")
    data = root / "data"
    data.mkdir()
    x, y = digits_arrays()
    cut = 1400  # train rows (the aggregator fits the preprocessing on them) and its test rows
    np.savez(data / "server.npz", x=x[:cut], y=y[:cut], x_test=x[cut:], y_test=y[cut:])
    # Each client's file: its part of the training rows, as the simulation's iid partition draws it.
    parts = partition(torch.from_numpy(y[:cut]), PartitionSpec(type="iid"), CLIENTS, seed=0)
    clients = root / "clients"
    clients.mkdir()
    for k, idx in enumerate(parts):
        np.savez(clients / f"client-{k}.npz", x=x[:cut][idx.numpy()], y=y[:cut][idx.numpy()])
    home = root / "home"
    _, admin = TokenStore(home).create("admin", "ops")
    server = start_server(
        home,
        *("--workers", "1", "--lease-s", "6", "--heartbeat-s", "1", "--data-dir", str(data)),
        headers={"Authorization": f"Bearer {admin}"},
        ready=workers_alive,
        timeout=120,
    )
    procs: list[subprocess.Popen[bytes]] = []
    yield {"server": server, "home": home, "data": data, "clients": clients, "root": root, "procs": procs}
    for proc in procs:  # a failed test leaves no client behind
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert server.stop() in (0, -15), server.output()


def join(server: Server, token: str, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modelyard", "federated", "join", server.url, "--data", str(data)]
            + ["--token", token, "--poll-s", "0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start(
    setup: dict[str, Any], *, cli: bool = False, joins: int = CLIENTS, **section: Any
) -> tuple[dict[str, Any], list[subprocess.Popen[bytes]]]:
    server: Server = setup["server"]
    spec = _spec(str(setup["data"] / "server.npz"), mode="deployed", **section)
    if cli:  # `modelyard federated start SPEC --url URL --token ADMIN`
        path = setup["root"] / "federation.yaml"
        path.write_text(yaml.safe_dump(spec))
        token = server.headers["Authorization"].split()[1]
        started = run_cli("federated", "start", str(path), "--json", "--url", server.url, "--token", token)
        assert started.code == 0, started.err
        fed = json.loads(started.out)
    else:
        r = server.post("/v1/federations", json={"spec": spec})
        assert r.status_code == 201, r.text
        fed = r.json()
    assert [c["name"] for c in fed["tokens"]] == [f"client-{k}" for k in range(CLIENTS)]
    procs = [
        join(server, c["token"], setup["clients"] / f"client-{k}.npz", setup["root"] / f"{fed['id']}-{k}.log")
        for k, c in enumerate(fed["tokens"][:joins])
    ]
    setup["procs"].extend(procs)
    return fed, procs


def finish(setup: dict[str, Any], fed: dict[str, Any], timeout: float = 150) -> dict[str, Any]:
    server: Server = setup["server"]
    return server.wait_job(fed["job_id"], timeout)


def test_a_deployed_federation_gives_the_simulations_weights(setup: dict[str, Any], tmp_path: Path) -> None:
    server: Server = setup["server"]
    fed, procs = start(setup, cli=True)
    job = finish(setup, fed)
    outputs = [p.wait(60) for p in procs]
    logs = [(setup["root"] / f"{fed['id']}-{k}.log").read_text() for k in range(CLIENTS)]
    assert job["status"] == "succeeded", (job.get("error"), server.output()[-3000:], logs)
    assert outputs == [0, 0, 0], logs
    assert all("finished: fed:" in text for text in logs)

    run = RunStore(setup["home"]).get(job["run_id"])
    assert [row["epoch"] for row in run.history] == [1, 2, 3]
    assert all(row["clients"] == CLIENTS and row["dropped"] == 0 for row in run.history)
    version = ModelStore(setup["home"]).get(job["model_ref"])
    lineage = version.lineage["federated"]
    assert lineage["mode"] == "deployed" and lineage["rounds"] == 3 and lineage["clients"] == CLIENTS
    assert lineage["strategy"] == {"type": "fedavg"} and lineage["quorum"] == CLIENTS

    # The reference: the simulation of the same spec on the aggregator's file (the same rows, the same
    # iid partition and seed): each client's fit is the same, so is every round's FedAvg.
    simulated = modelyard.train(_spec(str(setup["data"] / "server.npz")), home=tmp_path / "sim", progress=False)
    want = ModelStore(tmp_path / "sim").get(simulated.model_ref).load_state_dict()
    got = version.load_state_dict()
    assert got.keys() == want.keys()
    for key in got:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert version.metrics["test"]["accuracy"] == pytest.approx(simulated.test_metrics["accuracy"], abs=1e-3)
    assert [r["samples"] for r in run.history] == [1400] * 3


def test_a_client_killed_mid_round_leaves_the_round_to_the_quorum(setup: dict[str, Any]) -> None:
    server: Server = setup["server"]
    fed, procs = start(setup, quorum=2, round_timeout_s=10)
    folder = setup["home"] / "federations" / fed["id"]
    # Client 2 is killed once it has the round's task (its data prepared) and before its update arrives.
    wait_for(lambda: (folder / "global-1.safetensors").is_file(), 120, "round 1 to open", every=0.05)
    status = httpx.get(
        server.url + "/v1/federated/status", headers={"Authorization": f"Bearer {fed['tokens'][2]['token']}"}
    )
    assert status.status_code == 200 and status.json()["round"] == 1 and status.json()["selected"]
    procs[2].send_signal(signal.SIGKILL)
    procs[2].wait(10)
    job = finish(setup, fed)
    logs = [(setup["root"] / f"{fed['id']}-{k}.log").read_text() for k in range(CLIENTS)]
    assert job["status"] == "succeeded", (job.get("error"), logs)
    assert [p.wait(60) for p in procs[:2]] == [0, 0], logs
    history = RunStore(setup["home"]).get(job["run_id"]).history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    # Client 2 may have answered round 1 before the kill; it answers no later round.
    assert all(row["clients"] >= 2 for row in history) and [row["clients"] for row in history[1:]] == [2, 2]
    assert history[-1]["dropped"] == 1
    version = ModelStore(setup["home"]).get(job["model_ref"])
    assert version.metrics["test"]["accuracy"] > 0.8  # 10 classes: chance is 0.1


def test_join_with_a_wrong_token_or_a_file_of_another_shape_is_one_line(setup: dict[str, Any]) -> None:
    server: Server = setup["server"]
    data = setup["clients"] / "client-0.npz"
    denied = run_process(
        "federated", "join", server.url, "--data", str(data), "--token", "myf_fed-000000000000_" + "a" * 43
    )
    assert denied.code == 8 and denied.err.strip().count("\n") == 0 and "Invalid federation token" in denied.err
    # A file whose rows have 10 features where the federation's model takes 64: refused before round 1.
    x, y = digits_arrays()
    np.savez(setup["root"] / "narrow.npz", x=x[:50, :10], y=y[:50])
    fed, procs = start(setup, quorum=1, round_timeout_s=30)
    for proc in procs:  # only the narrow client joins
        proc.kill()
        proc.wait(10)
    narrow = run_process(
        "federated",
        "join",
        server.url,
        "--data",
        str(setup["root"] / "narrow.npz"),
        "--token",
        fed["tokens"][0]["token"],
    )
    assert narrow.code != 0 and narrow.err.strip().count("\n") == 0 and "Traceback" not in narrow.err, narrow.err
    assert "10" in narrow.err and "64" in narrow.err, narrow.err
    assert not (setup["home"] / "federations" / fed["id"] / "joined-0").exists()
    assert server.post(f"/v1/jobs/{fed['job_id']}/cancel").status_code == 200
    server.wait_job(fed["job_id"], 30)
