"""`runs delete RUN`: a finished run goes with its history and folder; running runs and runs a job will retry stay."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from modelyard.server.jobs.store import JobStore
from modelyard.server.tables import JobRow, control_database
from modelyard.store import ModelStore, RunStore
from tests.support.cli import run_cli
from tests.support.jobs import resolved, tiny_spec
from tests.support.serving import register


def test_a_finished_run_is_deleted_and_its_model_stays(home: Path) -> None:
    runs = RunStore(home)
    run = runs.create({"name": "clf"})
    runs.start(run.id)
    runs.log_epoch(run.id, 1, {"loss": 0.5})
    (runs.checkpoint_dir(run.id) / "last.safetensors").write_bytes(b"x")
    refused = run_cli("--home", str(home), "runs", "delete", run.id)
    assert refused.code == 5
    assert (
        refused.err
        == f"error: Refused to delete run {run.id}: it is running; cancel it first (`modelyard runs cancel {run.id}`)\n"
    )
    ref = register("clf", home)
    runs.finish(run.id, {}, model_ref=ref)
    done = run_cli("--home", str(home), "runs", "delete", run.id[-6:])
    assert done.code == 0 and done.out == f"deleted run {run.id} (succeeded, 1 epochs); its model {ref} stays\n"
    assert not run.path.exists() and ModelStore(home).get(ref).path.is_dir()
    assert run_cli("--home", str(home), "runs", "delete", run.id).code == 4


def test_a_run_that_a_job_will_retry_is_refused(home: Path) -> None:
    runs = RunStore(home)
    run = runs.create({"name": "clf"})
    runs.start(run.id)
    runs.fail(run.id, "worker lost")
    job = JobStore(home).submit(resolved(tiny_spec()), max_attempts=3)
    with control_database(home).session(write=True) as session:  # as a worker records its run, back in the queue
        session.execute(update(JobRow).where(JobRow.id == job.id).values(run_id=run.id))
    refused = run_cli("--home", str(home), "runs", "delete", run.id)
    assert refused.code == 5
    assert (
        refused.err
        == f"error: Refused to delete run {run.id}: job {job.id} (queued) will resume it; cancel that first\n"
    )
    assert runs.get(run.id).id == run.id
    JobStore(home).cancel(job.id)
    assert run_cli("--home", str(home), "runs", "delete", run.id).code == 0
