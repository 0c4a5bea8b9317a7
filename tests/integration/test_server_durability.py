"""Durability with real processes: a worker SIGKILLed mid-epoch is noticed through its lease and
its job resumes from the last checkpoint (bounded retries, one model version); a server
restart loses no queued job; the workers of a killed server do not live on."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from modelyard import workflow  # noqa: E402
from modelyard.server.jobs.store import JobStore  # noqa: E402
from modelyard.store import ModelStore, RunStore  # noqa: E402
from tests.support.server_process import Server, pid_alive, spec, start_server, wait_for, workers_alive  # noqa: E402

FAST_LEASE = ("--lease-s", "2", "--heartbeat-s", "0.3", "--reap-interval-s", "0.3")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("durability") / "home"


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def server(home: Path, servers: list[Server]) -> Server:
    """Two workers: when one is killed the other, already warm, takes the job over."""
    started = start_server(home, "--workers", "2", *FAST_LEASE, ready=workers_alive)
    servers.append(started)
    return started


def kill_worker_mid_epoch(server: Server, job_id: str, after_epoch: int) -> tuple[int, int]:
    """SIGKILL the job's worker once epoch ``after_epoch`` (or a later one) has ended:
    (the worker's pid, the last epoch it was seen to finish)."""
    job = server.wait_epoch(job_id, after_epoch)
    os.kill(job["worker_pid"], signal.SIGKILL)
    return job["worker_pid"], job["progress"]["epoch"]


def test_a_worker_killed_mid_epoch_is_noticed_and_its_job_resumes_from_the_checkpoint(
    home: Path, tmp_path: Path, server: Server
) -> None:
    body = spec("durable", epochs=6)
    job = server.submit({"spec": body})
    killed, seen = kill_worker_mid_epoch(server, job["id"], after_epoch=2)

    done = server.wait_job(job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2 and done["worker_pid"] != killed
    log = server.get(f"/v1/jobs/{job['id']}/logs").text
    assert "reaper: no heartbeat for" in log and f"from worker {killed}@" in log
    resumed = log.split("attempt 2/3")[1]
    # The checkpoint of the epoch seen last (or of one ended in the instant before the kill).
    after = int(re.search(r"resuming after epoch (\d+)", resumed).group(1))
    assert seen <= after <= seen + 1 and after < 6
    assert [int(e) for e in re.findall(r"epoch (\d+)/6", resumed)] == list(range(after + 1, 7))
    # One model version, from the job's own run, with every epoch in its history.
    versions = ModelStore(home).versions("durable")
    assert [v.version for v in versions] == [1] and versions[0].run_id == done["run_id"]
    assert [row["epoch"] for row in done["history"]] == [1, 2, 3, 4, 5, 6]
    # Resumed exactly: the weights of an uninterrupted `modelyard train` of the same spec.
    reference = workflow.train(body, home=tmp_path / "reference", progress=False)
    got = versions[0].load_state_dict()
    want = ModelStore(tmp_path / "reference").get(reference.model_ref).load_state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert sum(w["restarts"] for w in server.get("/healthz").json()["workers"]) == 1  # the pool replaced it

    # Bounded retries: a job whose only attempt is lost fails with the reason, never stuck running.
    wait_for(lambda: workers_alive(server), 30, "the replacement worker")
    doomed = server.submit({"spec": spec("doomed", epochs=20), "max_attempts": 1})
    killed, _ = kill_worker_mid_epoch(server, doomed["id"], after_epoch=1)
    failed = server.wait_job(doomed["id"], timeout=30)
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert failed["error"].startswith("worker lost 1 times: no heartbeat for ")
    assert failed["error"].endswith(f"from worker {killed}@{failed['worker_id'].split('@')[1]}")
    assert RunStore(home).get(failed["run_id"]).status == "failed"
    assert ModelStore(home).for_run(failed["run_id"]) is None


def test_a_restart_loses_no_queued_job_and_resumes_the_running_one(
    home: Path, server: Server, servers: list[Server]
) -> None:
    first = server
    running = first.submit({"spec": spec("restart-a", epochs=3)})
    queued = [
        first.submit({"spec": spec("restart-b", epochs=3)}),  # on the second worker, if it is warm yet
        *(first.submit({"spec": spec(f"restart-{c}", n=2000, epochs=2)}) for c in "cd"),
    ]
    first.wait_epoch(running["id"], 1)
    worker_pids = [w["pid"] for w in first.get("/healthz").json()["workers"]]
    assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM), first.output()
    assert not any(pid_alive(pid) for pid in worker_pids)  # the pool stopped its workers
    jobs = JobStore(home)  # the server is down: read the store
    assert [jobs.get(j["id"]).status for j in (running, *queued)] == ["queued"] * 4
    assert [jobs.get(j["id"]).attempts for j in (running, *queued)] == [0] * 4  # a clean stop is no lost attempt

    second = start_server(home, "--workers", "2", *FAST_LEASE)
    servers.append(second)
    done = [second.wait_job(j["id"], timeout=60) for j in (running, *queued)]
    assert [d["status"] for d in done] == ["succeeded"] * 4
    assert "resuming after epoch" in second.get(f"/v1/jobs/{running['id']}/logs").text
    assert sorted(v.ref for v in ModelStore(home).list() if v.name.startswith("restart")) == [
        "restart-a:1",
        "restart-b:1",
        "restart-c:1",
        "restart-d:1",
    ]

    # A server killed outright: its workers notice their parent is gone and hand their job back.
    last = second.submit({"spec": spec("restart-e", epochs=20)})
    job = second.wait_epoch(last["id"], 1)
    second.stop(signal.SIGKILL)
    wait_for(lambda: not pid_alive(job["worker_pid"]), 15, "the orphaned worker to exit")
    assert jobs.get(last["id"]).status == "queued"
