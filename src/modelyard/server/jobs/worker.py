"""A training worker process: ``python -m modelyard.server.jobs.worker --home H ...``.

The server's pool starts these as fresh interpreters (never a fork of the server). Each
claims the oldest queued job, runs it through ``workflow.train`` (first attempt) or
``workflow.resume`` (later attempts, from the run's last good checkpoint), exactly as
``modelyard train`` does, and records the outcome. A heartbeat thread renews the lease;
when the job is cancelled, handed to another worker, or the server stops, it interrupts
the training in the main thread with a signal (``_Stop``, a BaseException, so the
training path does not mistake it for a training failure).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import traceback
from pathlib import Path
from typing import Any

from modelyard.data.access import DataAccess, confined
from modelyard.errors import LeaseLostError, ModelyardError
from modelyard.server.jobs.leases import Leases
from modelyard.server.jobs.logfile import JobLog
from modelyard.server.jobs.store import Job, job_log_path
from modelyard.spec import FEDERATION_SECTION
from modelyard.status import Status
from modelyard.store import ModelStore, RunStore, paths

__all__ = ["Worker", "main"]

log = logging.getLogger(__name__)


class _Stop(BaseException):
    """Raised in the main thread to end an attempt: ``cancel``, ``stop`` or ``lost``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Worker:
    """Claims and runs jobs until SIGTERM or until the server that started it is gone."""

    def __init__(
        self,
        home: str | Path | None,
        *,
        lease_s: float,
        heartbeat_s: float,
        poll_s: float = 0.5,
        parent_pid: int | None = None,
        data_dirs: list[str | Path] | tuple[str | Path, ...] = (),
        max_data_bytes: int = 4096 * 1024 * 1024,
    ) -> None:
        self.home = paths.home(home)
        # Enforced here too, not only when the job was submitted: the queue may have been
        # written by another server (version), and a resumed run re-reads its stored spec.
        self.access = DataAccess.server(data_dirs, home=self.home, max_bytes=max_data_bytes)
        self.leases = Leases(self.home, lease_s)
        self.heartbeat_s, self.poll_s = heartbeat_s, poll_s
        self.worker_id = f"{os.getpid()}@{socket.gethostname()}"[:64]
        # The server's pid, from the server itself: a worker whose server died while it was
        # still importing torch has already been handed to init and must notice that too.
        self.parent_pid = parent_pid if parent_pid is not None else os.getppid()
        self.stopping = threading.Event()
        self._why: str | None = None  # why the current attempt must end
        self._interruptible = False  # True while the training may be interrupted

    # -- signals: both handlers run in the main thread ---------------------------------

    def _on_term(self, _signum: int, _frame: Any) -> None:
        self.stopping.set()
        self._interrupt_now("stop")

    def _on_wake(self, _signum: int, _frame: Any) -> None:
        if self._why is not None:
            self._interrupt_now(self._why)

    def _interrupt_now(self, why: str) -> None:
        self._why = self._why or why
        if self._interruptible:
            self._interruptible = False  # deliver once
            raise _Stop(self._why)

    def _interrupt(self, why: str) -> None:
        """From the heartbeat thread: end the attempt in the main thread."""
        if self._why is None:
            self._why = why
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _parent_gone(self) -> bool:
        return os.getppid() != self.parent_pid

    # -- the loop ----------------------------------------------------------------------

    def serve_forever(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_wake)
        log.info("worker %s polling %s for jobs", self.worker_id, self.home)
        while not self.stopping.is_set():
            if self._parent_gone():
                log.warning("worker %s: the server is gone; exiting", self.worker_id)
                return
            try:
                job = self.leases.claim(self.worker_id)
            except Exception:  # noqa: BLE001 - a locked or missing database: try again
                log.exception("worker %s could not claim a job", self.worker_id)
                job = None
            if job is None:
                self.stopping.wait(self.poll_s)
                continue
            self.run_job(job)

    def run_job(self, job: Job) -> None:
        """One attempt of ``job``, with a heartbeat thread beside it."""
        # A SIGTERM that came between the claim and now still ends this attempt.
        self._why, self._interruptible = ("stop" if self.stopping.is_set() else None), False
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, done), name="heartbeat", daemon=True)
        with JobLog(job_log_path(self.home, job.id)) as joblog:
            beat.start()
            try:
                self._attempt(job, joblog)
            finally:
                self._interruptible = False
                done.set()
                beat.join()

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_s):
            try:
                state = self.leases.renew(job_id, self.worker_id)
            except Exception:  # noqa: BLE001 - keep beating; the lease covers a few misses
                log.exception("heartbeat for job %s failed", job_id)
                continue
            if state != "ok":
                self._interrupt(state)
            elif self._parent_gone():
                self.stopping.set()
                self._interrupt("stop")

    def _attempt(self, job: Job, joblog: JobLog) -> None:
        state: dict[str, Any] = {"run_id": job.run_id}
        # A federated job's history rows are rounds.
        epochs = int((job.spec.get("federated") or {}).get("rounds") or job.spec.get("train", {}).get("epochs") or 0)

        def run_created(run_id: str) -> None:
            state["run_id"] = run_id
            self.leases.set_run(job.id, self.worker_id, run_id)
            joblog.line(f"run {run_id} created")
            self._start_interruptible()

        def epoch_end(epoch: int, metrics: dict[str, Any]) -> None:
            joblog.epoch(epoch, epochs, metrics)
            try:
                self.leases.progress(
                    job.id,
                    self.worker_id,
                    {"epoch": epoch, "epochs": epochs, "fraction": round(epoch / epochs, 4) if epochs else None},
                )
            except LeaseLostError:
                self._interrupt_now("lost")  # a BaseException: the run is not marked failed

        joblog.line(
            f"attempt {job.attempts}/{job.max_attempts} of job {job.id} ({job.name}) on worker {self.worker_id}"
        )
        try:
            with confined(self.access):
                ref = self._train(job, joblog, epoch_end, run_created)
            self._interruptible = False
            self._finish(job, Status.SUCCEEDED, joblog, model_ref=ref)
        except _Stop as stop:
            self._interruptible = False
            self._stopped(job, state["run_id"], stop.why, joblog)
        except LeaseLostError as exc:
            joblog.line(f"stopped: {exc}")
        except ModelyardError as exc:
            self._interruptible = False
            joblog.line(f"failed: {exc.message}")
            self._finish(job, Status.FAILED, joblog, error=exc.message)
        except Exception as exc:  # noqa: BLE001 - an unexpected fault fails the job, not the worker
            self._interruptible = False
            joblog.line("failed with an unexpected error:\n" + traceback.format_exc().rstrip())
            self._finish(job, Status.FAILED, joblog, error=f"{type(exc).__name__}: {exc}")

    def _train(self, job: Job, joblog: JobLog, epoch_end: Any, run_created: Any) -> str | None:
        """Train (first attempt) or resume (later ones); the model's ref."""
        from modelyard import workflow
        from modelyard.tuning.jobs import is_trial_job

        if is_trial_job(job.spec):  # one trial of a tune (POST /v1/tunes): the study gives its values
            from modelyard.tuning.jobs import run_trial_job

            return run_trial_job(
                job.spec, home=self.home, worker=os.getpid() % 1000, on_epoch_end=epoch_end, on_run_created=run_created
            )
        federation = (job.spec.get(FEDERATION_SECTION) or {}).get("id")  # a deployed federation's aggregator
        if job.run_id is None:
            return workflow.train(
                job.spec,
                home=self.home,
                progress=False,
                on_epoch_end=epoch_end,
                on_run_created=run_created,
                federation=federation,
            ).model_ref
        ref = self._already_done(job.run_id, joblog)
        if ref is None:
            joblog.line(f"resuming run {job.run_id} from its last good checkpoint")
            self._start_interruptible()
            ref = workflow.resume(job.run_id, home=self.home, progress=False, on_epoch_end=epoch_end).model_ref
        return ref

    def _start_interruptible(self) -> None:
        self._interruptible = True
        if self._why is not None:  # asked to stop while it could not be interrupted
            self._interrupt_now(self._why)

    def _finish(self, job: Job, status: Status, joblog: JobLog, **fields: Any) -> None:
        try:
            final = self.leases.finish(job.id, self.worker_id, status, **fields)
        except LeaseLostError as exc:
            joblog.line(f"could not record {status}: {exc}")
            return
        joblog.line(
            f"job {status}"
            + (f": {final.model_ref}" if final.model_ref else "")
            + (f" ({final.error})" if final.error else "")
        )

    def _already_done(self, run_id: str, joblog: JobLog, *, settle: bool = True) -> str | None:
        """The model of a run that got registered before its worker was lost, if any.

        With ``settle`` a run left ``running`` by a lost worker is marked failed, so it
        can be resumed.
        """
        runs = RunStore(self.home)
        record = runs.get(run_id)
        version = ModelStore(self.home).for_run(run_id)
        if version is None:
            if settle and record.status == Status.RUNNING:  # its worker died without a word
                runs.fail(run_id, "worker lost")
            return None
        if record.status != Status.SUCCEEDED:
            if record.status != Status.RUNNING:
                runs.start(run_id)
            runs.finish(run_id, record.summary, version.ref)
        joblog.line(f"run {run_id} had already registered {version.ref}; not training again")
        return version.ref

    def _stopped(self, job: Job, run_id: str | None, why: str, joblog: JobLog) -> None:
        """Settle an interrupted attempt: cancelled, handed back to the queue, or lost."""
        if why == "lost":
            joblog.line("stopped: the job's lease was lost (another worker may own it now)")
            return
        if run_id is not None:
            ref = self._already_done(run_id, joblog, settle=False)
            if ref is not None:  # the interrupt came after the model was registered
                self._finish(job, Status.SUCCEEDED, joblog, model_ref=ref)
                return
            runs = RunStore(self.home)
            status = runs.get(run_id).status
            if why == "cancel" and status in (Status.QUEUED, Status.RUNNING):
                runs.cancel(run_id, "cancelled by user")
            elif why == "stop" and status == Status.RUNNING:
                runs.fail(run_id, "interrupted: the server stopped; the job resumes from its last checkpoint")
        if why == "cancel":
            self._finish(job, Status.CANCELLED, joblog, error="cancelled by user")
        else:
            try:
                self.leases.release(job.id, self.worker_id, "requeued: the server stopped during an attempt")
                joblog.line("stopped: the server is stopping; the job goes back to the queue")
            except LeaseLostError as exc:
                joblog.line(f"stopped: {exc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelyard.server.jobs.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--lease-s", type=float, required=True)
    parser.add_argument("--heartbeat-s", type=float, required=True)
    parser.add_argument("--poll-s", type=float, default=0.5)
    parser.add_argument("--parent-pid", type=int, default=None, help="exit once this process (the server) is gone")
    parser.add_argument("--data-dir", action="append", default=[], help="a folder jobs may read data from")
    parser.add_argument("--max-data-mb", type=int, required=True, help="size cap of one job's data source")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("MODELYARD_LOG", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import modelyard.workflow  # noqa: F401 - import torch before the first claim, not during a lease
    from modelyard.training.fast.allocator import keep_freed_memory

    keep_freed_memory()  # this process only trains: keep freed blocks, as `modelyard train` does

    Worker(
        args.home,
        lease_s=args.lease_s,
        heartbeat_s=args.heartbeat_s,
        poll_s=args.poll_s,
        parent_pid=args.parent_pid,
        data_dirs=args.data_dir,
        max_data_bytes=args.max_data_mb * 1024 * 1024,
    ).serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
