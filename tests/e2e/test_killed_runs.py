"""A training process killed from outside (SIGKILL, SIGTERM) or cancelled leaves a run that
`train --resume` continues, or that says it was cancelled: real `python -m modelyard` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from modelyard.status import Status
from modelyard.store import ModelStore, RunStore
from modelyard.training.checkpoint import load_checkpoint
from tests.support.cli import run_cli
from tests.support.console import DIGITS

EPOCHS = 60


def start_training(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """A real training process, once it has checkpointed a few epochs; returns it and its run id."""
    spec = {**DIGITS, "name": "killed", "train": {**DIGITS["train"], "epochs": EPOCHS, "checkpoint": True}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "train", str(path), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = RunStore().list() if (Path(os.environ["MODELYARD_HOME"]) / "modelyard.db").exists() else []
        if runs and len(runs[0].history) >= 3:
            return proc, runs[0].id
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("training did not reach epoch 3 in 120 s")


def resume_completes(run_id: str) -> None:
    res = run_cli("train", "--resume", run_id, "--no-progress")
    assert res.code == 0, res.err
    run = RunStore().get(run_id)
    assert run.status == Status.SUCCEEDED and [h["epoch"] for h in run.history] == list(range(1, EPOCHS + 1))
    assert [v.ref for v in ModelStore().list()] == ["killed:1"] and run.model_ref == "killed:1"


def test_a_sigkilled_run_is_resumable_and_registers_one_version(tmp_path: Path) -> None:
    proc, run_id = start_training(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert RunStore().get(run_id).status == Status.RUNNING  # nobody could say otherwise
    resume_completes(run_id)  # its process is gone from this machine: no need to wait for the heartbeat


def test_a_sigterm_marks_the_run_interrupted_with_a_whole_checkpoint(tmp_path: Path) -> None:
    proc, run_id = start_training(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted", err
    run = RunStore().get(run_id)
    assert run.status == Status.INTERRUPTED and f"modelyard train --resume {run_id}" in run.error
    ckpt = load_checkpoint(run.path / "checkpoints")
    assert ckpt is not None and ckpt.epoch >= 3
    resume_completes(run_id)


def test_runs_cancel_stops_the_training_process(tmp_path: Path) -> None:
    proc, run_id = start_training(tmp_path)
    res = run_cli("runs", "cancel", run_id)
    assert res.code == 0 and f"stopped its process {proc.pid}" in res.out, res.err
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    run = RunStore().get(run_id)
    assert run.status == Status.CANCELLED and run.error == "cancelled by user" and ModelStore().list() == []
    again = run_cli("runs", "cancel", run_id)
    assert again.code == 5 and "is cancelled; this needs a run that is queued or running or interrupted" in again.err


def test_runs_cancel_of_a_job_run_goes_through_the_job(home: Path) -> None:
    # Signalled directly, the worker would hand the job back to the queue to resume the run.
    from modelyard.server.jobs.leases import Leases
    from modelyard.server.jobs.store import JobStore

    runs = RunStore()
    run = runs.start(runs.create({"name": "killed"}).id)
    jobs, leases = JobStore(home), Leases(home, lease_s=30)
    job = jobs.submit({"name": "killed"}, max_attempts=3)
    assert leases.claim("w-1").id == job.id
    leases.set_run(job.id, "w-1", run.id)
    res = run_cli("runs", "cancel", run.id)
    assert res.code == 0 and f"through its job {job.id}" in res.out, res.err
    assert jobs.get(job.id).cancel_requested and leases.renew(job.id, "w-1") == "cancel"
    assert runs.get(run.id).status == Status.RUNNING  # its worker stops it and marks it cancelled
