"""The worker in-process: same result as `modelyard train`, exact resume after a lost attempt,
at most one model version per job, cancel and stop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from modelyard import workflow  # noqa: E402
from modelyard.server.jobs.leases import Leases  # noqa: E402
from modelyard.server.jobs.logfile import JobLog  # noqa: E402
from modelyard.server.jobs.reaper import reap_once  # noqa: E402
from modelyard.server.jobs.store import Job, JobStore  # noqa: E402
from modelyard.server.jobs.worker import Worker  # noqa: E402
from modelyard.server.tables import JobRow  # noqa: E402
from modelyard.store import ModelStore, RunStore  # noqa: E402
from tests.support.jobs import Clock, resolved, tiny_spec


class _Die(BaseException):
    """Stands for SIGKILL: nothing after it runs, nothing is cleaned up."""


@pytest.fixture
def worker(home: Path) -> Iterator[Worker]:
    w = Worker(home, lease_s=30, heartbeat_s=0.1)
    previous = signal.signal(signal.SIGUSR1, w._on_wake)  # serve_forever installs it in a real worker
    yield w
    signal.signal(signal.SIGUSR1, previous)


def queue(home: Path, spec: dict, max_attempts: int = 3) -> Job:
    return JobStore(home).submit(resolved(spec), max_attempts=max_attempts)


def run_next(worker: Worker) -> Job:
    job = worker.leases.claim(worker.worker_id)
    assert job is not None
    worker.run_job(job)
    return JobStore(worker.home).get(job.id)


def reference_weights(tmp_path: Path, spec: dict) -> dict[str, torch.Tensor]:
    """The same spec trained without interruption by `modelyard train`'s path."""
    result = workflow.train(spec, home=tmp_path / "reference", progress=False)
    return ModelStore(tmp_path / "reference").get(result.model_ref).load_state_dict()


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_job_trains_and_registers_exactly_like_modelyard_train(worker: Worker, home: Path, tmp_path: Path) -> None:
    spec = tiny_spec()
    queue(home, spec)
    done = run_next(worker)
    assert done.status == "succeeded" and done.model_ref == "tiny:1" and done.error is None
    assert done.progress == {"epoch": 3, "epochs": 3, "fraction": 1.0}
    run = RunStore(home).get(done.run_id)
    assert run.status == "succeeded" and run.model_ref == "tiny:1" and len(run.history) == 3
    assert_same(ModelStore(home).get("tiny:1").load_state_dict(), reference_weights(tmp_path, spec))
    log = JobStore(home).log_path(done.id).read_text()
    assert "attempt 1/3" in log and "epoch 3/3  loss" in log and "job succeeded: tiny:1" in log


def test_a_lost_attempt_resumes_from_its_checkpoint_with_identical_weights(
    worker: Worker, home: Path, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_spec(epochs=4)
    job = queue(home, spec)
    real_epoch = JobLog.epoch

    def dies_after_epoch_2(self: JobLog, epoch: int, epochs: int, metrics: dict) -> None:
        real_epoch(self, epoch, epochs, metrics)
        if epoch == 2:
            raise _Die()

    monkeypatch.setattr(JobLog, "epoch", dies_after_epoch_2)
    with pytest.raises(_Die):
        run_next(worker)
    lost = JobStore(home).get(job.id)
    assert lost.status == "running"  # a dead worker says nothing
    assert len(RunStore(home).get(lost.run_id).history) == 2
    monkeypatch.setattr(JobLog, "epoch", real_epoch)

    clock.advance(31)  # the lease runs out
    assert [r.status for r in reap_once(home, 30)] == ["queued"]
    successor = Worker(home, lease_s=30, heartbeat_s=0.1)
    done = run_next(successor)
    assert (done.status, done.attempts, done.run_id) == ("succeeded", 2, lost.run_id)
    log = JobStore(home).log_path(job.id).read_text()
    assert "resuming after epoch 2" in log and "epoch 1/4" not in log.split("attempt 2/3")[1]
    assert [v.version for v in ModelStore(home).versions("tiny")] == [1]
    assert [row["epoch"] for row in RunStore(home).get(done.run_id).history] == [1, 2, 3, 4]
    assert_same(ModelStore(home).get(done.model_ref).load_state_dict(), reference_weights(tmp_path, spec))


@pytest.mark.parametrize("dies_in", ["runs.finish", "leases.finish"])
def test_a_job_registers_at_most_one_version_however_often_it_is_retried(
    worker: Worker, home: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    """The worker dies after registering, before the run (or the job) records it."""
    job = queue(home, tiny_spec(epochs=1))
    target = RunStore if dies_in == "runs.finish" else Leases
    real = target.finish
    calls = {"n": 0}

    def die_once(self, *args, **kwargs):  # noqa: ANN001,ANN202
        calls["n"] += 1
        if calls["n"] == 1:
            raise _Die()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(target, "finish", die_once)
    with pytest.raises(_Die):
        run_next(worker)
    assert [v.ref for v in ModelStore(home).list()] == ["tiny:1"]
    for attempt in (2, 3):  # retried twice more: still the one version
        clock.advance(31)
        reap_once(home, 30)
        done = run_next(Worker(home, lease_s=30, heartbeat_s=0.1))
        assert (done.status, done.model_ref, done.attempts) == ("succeeded", "tiny:1", attempt)
        assert RunStore(home).get(done.run_id).status == "succeeded"
        assert "had already registered tiny:1; not training again" in JobStore(home).log_path(job.id).read_text()
        with JobStore(home).db.session(write=True) as session:  # as if lost once more
            row = session.get(JobRow, job.id)
            row.status, row.lease_expires_at = "running", clock.now
    assert [v.ref for v in ModelStore(home).list()] == ["tiny:1"]


def test_cancel_stops_a_running_job_within_a_heartbeat(worker: Worker, home: Path) -> None:
    job = queue(home, tiny_spec(epochs=500))
    store = JobStore(home)

    def cancel_after_first_epoch() -> None:
        deadline = time.monotonic() + 60
        while store.get(job.id).progress.get("epoch", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        store.cancel(job.id)

    canceller = threading.Thread(target=cancel_after_first_epoch)
    canceller.start()
    started = time.monotonic()
    done = run_next(worker)
    canceller.join()
    assert done.status == "cancelled" and done.error == "cancelled by user"
    assert done.progress["epoch"] < 500 and time.monotonic() - started < 30
    run = RunStore(home).get(done.run_id)
    assert run.status == "cancelled"
    assert ModelStore(home).list() == []  # nothing registered


def test_stop_hands_the_job_back_and_the_next_attempt_resumes(worker: Worker, home: Path, tmp_path: Path) -> None:
    spec = tiny_spec(epochs=20)
    spec["data"]["n"] = 1600  # 400 steps an epoch: the stop lands long before the last one
    job = queue(home, spec)
    store = JobStore(home)

    def stop_after_epoch_2() -> None:
        deadline = time.monotonic() + 60
        while store.get(job.id).progress.get("epoch", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker._interrupt("stop")  # what SIGTERM or a vanished server does

    stopper = threading.Thread(target=stop_after_epoch_2)
    stopper.start()
    requeued = run_next(worker)
    stopper.join()
    assert (requeued.status, requeued.attempts) == ("queued", 0)
    assert RunStore(home).get(requeued.run_id).status == "failed"
    done = run_next(Worker(home, lease_s=30, heartbeat_s=0.1))
    assert (done.status, done.attempts, done.run_id) == ("succeeded", 1, requeued.run_id)
    assert_same(ModelStore(home).get(done.model_ref).load_state_dict(), reference_weights(tmp_path, spec))


def test_a_spec_that_does_not_fit_its_data_fails_the_job_with_the_train_message(worker: Worker, home: Path) -> None:
    spec = tiny_spec()
    spec["model"]["input"] = [3]  # the data has 4 features
    queue(home, spec)
    done = run_next(worker)
    assert done.status == "failed" and done.attempts == 1
    assert done.error.startswith("Invalid value for `model.input`: the data gives samples of shape [4]")
    assert done.run_id is None and RunStore(home).list() == []  # checked before the run was created


def _csv_job_spec(path: Path) -> dict:
    return {
        **tiny_spec(),
        "data": {"source": "csv", "path": str(path), "target": "y"},
        "model": {"input": [1], "layers": [{"dense": 1}]},
    }


def test_the_worker_refuses_a_path_the_submit_route_never_checked(worker: Worker, home: Path, tmp_path: Path) -> None:
    # Queued straight into the table (another server version, a hand-written row): the worker
    # applies the data rule itself, so the job fails naming the field and the file is not read.
    secret = tmp_path / "secret.csv"
    secret.write_text("k3y\n" + "".join(f"{i}\n" for i in range(8)))
    done = run_next_after(queue(home, _csv_job_spec(secret)), worker)
    assert done.status == "failed" and done.run_id is None and ModelStore(home).list() == []
    assert done.error == (
        f"data.path: '{secret}' is outside the server's data folders "
        "(configured: none; start the server with --data-dir DIR)"
    )


def test_a_resumed_run_is_held_to_the_data_rule_too(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for folder in (data, tmp_path):
        (folder / "d.csv").write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(8)))
    first = Worker(home, lease_s=30, heartbeat_s=0.1, data_dirs=[data])
    job = queue(home, _csv_job_spec(data / "d.csv"))
    # A run whose stored spec names a file outside the folders, as a retry would find it.
    run = RunStore(home).create(resolved(_csv_job_spec(tmp_path / "d.csv")), {})
    claimed = first.leases.claim(first.worker_id)
    first.leases.set_run(claimed.id, first.worker_id, run.id)
    first.run_job(JobStore(home).get(job.id))
    done = JobStore(home).get(job.id)
    assert done.status == "failed" and "data.path: " in done.error and "outside the server's data folders" in done.error


def run_next_after(job: Job, worker: Worker) -> Job:
    claimed = run_next(worker)
    assert claimed.id == job.id
    return claimed
