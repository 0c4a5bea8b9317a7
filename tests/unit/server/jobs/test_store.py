"""The job table: submit/list/cancel, leases (claim, renew, finish, release) and the reaper."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from modelyard.errors import InputError, LeaseLostError, NotFoundError, StoreError  # noqa: E402
from modelyard.server.jobs.leases import Leases  # noqa: E402
from modelyard.server.jobs.reaper import reap_once  # noqa: E402
from modelyard.server.jobs.store import JobStore  # noqa: E402
from modelyard.store import RunStore  # noqa: E402
from tests.support.jobs import Clock, resolved, tiny_spec


@pytest.fixture
def store(home: Path) -> JobStore:
    return JobStore(home)


def submit(store: JobStore, max_attempts: int = 3, clock: Clock | None = None):  # noqa: ANN201
    job = store.submit(resolved(tiny_spec()), max_attempts=max_attempts, submitted_by="test")
    if clock is not None:
        clock.advance(1)  # distinct created_at: the queue order is by time
    return job


def test_submit_get_list_and_prefix_lookup(store: JobStore, clock: Clock) -> None:
    a, b = submit(store, clock=clock), submit(store, clock=clock)
    assert a.status == "queued" and a.attempts == 0 and a.name == "tiny" and a.submitted_by == "test"
    assert store.get(a.id).spec == resolved(tiny_spec())
    assert store.get(a.id.split("-")[-1][:6]).id == a.id  # the random part finds it, as for runs
    assert [j.id for j in store.list()] == [b.id, a.id]  # newest first
    assert store.list(status="running") == []
    with pytest.raises(InputError, match="did you mean 'queued'"):
        store.list(status="queud")
    with pytest.raises(NotFoundError, match="Unknown job"):
        store.get("j-20990101-ffffff")


def test_claim_takes_the_oldest_queued_job_once(store: JobStore, home: Path, clock: Clock) -> None:
    first, second = submit(store, clock=clock), submit(store, clock=clock)
    leases = Leases(home, lease_s=30)
    job = leases.claim("w1")
    assert job is not None and job.id == first.id
    assert (job.status, job.attempts, job.worker_id) == ("running", 1, "w1")
    assert (job.lease_expires_at - clock.now).total_seconds() == 30
    assert leases.claim("w2").id == second.id
    assert leases.claim("w3") is None


def test_concurrent_claims_never_share_a_job(store: JobStore, home: Path) -> None:
    ids = {submit(store).id for _ in range(24)}
    got: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        leases = Leases(home, lease_s=30)
        while (job := leases.claim(name)) is not None:
            with lock:
                got.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == sorted(ids)  # every job claimed exactly once


def test_renew_reports_cancel_and_lost_leases(store: JobStore, home: Path, clock: Clock) -> None:
    job = submit(store)
    leases = Leases(home, lease_s=10)
    leases.claim("w1")
    clock.advance(5)
    assert leases.renew(job.id, "w1") == "ok"
    assert (store.get(job.id).lease_expires_at - clock.now).total_seconds() == 10
    assert leases.renew(job.id, "someone-else") == "lost"
    store.cancel(job.id)
    assert store.get(job.id).status == "running"  # a running job is stopped by its worker
    assert leases.renew(job.id, "w1") == "cancel"


def test_writes_by_a_worker_that_lost_the_job_are_refused(store: JobStore, home: Path) -> None:
    job = submit(store)
    leases = Leases(home, lease_s=10)
    leases.claim("w1")
    for call in (
        lambda: leases.set_run(job.id, "w2", "r-x"),
        lambda: leases.progress(job.id, "w2", {"epoch": 1}),
        lambda: leases.finish(job.id, "w2", "succeeded"),
    ):
        with pytest.raises(LeaseLostError, match="no longer leased to worker w2"):
            call()
    assert store.get(job.id).status == "running"


def test_cancel_queued_is_immediate_and_final_jobs_refuse(store: JobStore) -> None:
    job = submit(store)
    cancelled = store.cancel(job.id)
    assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled by user")
    assert cancelled.finished_at is not None
    with pytest.raises(StoreError, match="already cancelled"):
        store.cancel(job.id)
    assert Leases(store.home, lease_s=10).claim("w1") is None  # never picked up


def test_release_gives_the_job_back_without_counting_the_attempt(store: JobStore, home: Path) -> None:
    job = submit(store)
    leases = Leases(home, lease_s=10)
    leases.claim("w1")
    leases.release(job.id, "w1", "requeued: the server stopped")
    after = store.get(job.id)
    assert (after.status, after.attempts, after.worker_id) == ("queued", 0, None)
    assert leases.claim("w2").attempts == 1


def test_reaper_requeues_then_fails_after_max_attempts(store: JobStore, home: Path, clock: Clock) -> None:
    job = submit(store, max_attempts=2)
    leases = Leases(home, lease_s=10)
    runs = RunStore(home)
    run = runs.create(resolved(tiny_spec()))
    runs.start(run.id)

    leases.claim("w1")
    leases.set_run(job.id, "w1", run.id)
    clock.advance(9)
    assert reap_once(home, 10) == []  # lease still valid
    clock.advance(2)
    [reaped] = reap_once(home, 10)
    assert reaped.status == "queued" and reaped.run_id == run.id
    after = store.get(job.id)
    assert after.status == "queued" and after.attempts == 1
    assert "attempt 1 lost (no heartbeat for 11 s from worker w1)" in after.error
    # The run is settled in the same transaction, so the next attempt can resume it.
    assert runs.get(run.id).status == "failed"
    assert "reaper: no heartbeat for 11 s" in store.log_path(job.id).read_text()

    assert leases.claim("w2").attempts == 2
    runs.start(run.id)
    clock.advance(31)
    [reaped] = reap_once(home, 10)
    final = store.get(job.id)
    assert final.status == "failed" and final.finished_at == clock.now
    assert final.error == "worker lost 2 times: no heartbeat for 31 s from worker w2"
    assert runs.get(run.id).status == "failed"
    assert reap_once(home, 10) == []  # a failed job is never reaped again


def test_reaper_cancels_a_cancel_requested_job_whose_worker_is_gone(store: JobStore, home: Path, clock: Clock) -> None:
    job = submit(store)
    leases = Leases(home, lease_s=10)
    leases.claim("w1")
    store.cancel(job.id)
    clock.advance(11)
    [reaped] = reap_once(home, 10)
    assert reaped.status == "cancelled"
    assert store.get(job.id).status == "cancelled"


def test_finish_records_the_outcome(store: JobStore, home: Path) -> None:
    job = submit(store)
    leases = Leases(home, lease_s=10)
    leases.claim("w1")
    leases.progress(job.id, "w1", {"epoch": 2, "epochs": 3, "fraction": 0.6667})
    done = leases.finish(job.id, "w1", "succeeded", model_ref="tiny:1")
    assert (done.status, done.model_ref, done.lease_expires_at) == ("succeeded", "tiny:1", None)
    data = done.to_dict()
    assert data["progress"] == {"epoch": 2, "epochs": 3, "fraction": 0.6667}
    assert data["worker_id"] == "w1" and data["spec"]["name"] == "tiny"
    assert "spec" not in done.to_dict(spec=False)
