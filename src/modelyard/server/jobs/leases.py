"""Leases on jobs: how workers claim, renew and finish jobs, and how lost ones are reaped.

Every change is one transaction under the store's write lock (SQLite's ``BEGIN IMMEDIATE``,
PostgreSQL's advisory lock) that also locks the job's row, so two workers never claim the same
job. Claiming alone skips the store-wide lock on PostgreSQL: ``SELECT ... FOR UPDATE SKIP
LOCKED`` hands each of many concurrent workers (of one server or several) a different queued
row without waiting for the others; on SQLite the write lock serializes claims as before. A worker owns a running job only while ``worker_id`` names it; every write checks
that, so a worker that was presumed dead (and whose job was handed to another) cannot
overwrite the new owner's state: it gets ``LeaseLostError`` and stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.errors import LeaseLostError
from modelyard.server.jobs import store as _jobs
from modelyard.server.jobs.store import Job, job_from_row
from modelyard.server.tables import JobRow, control_database
from modelyard.status import Status
from modelyard.store import paths
from modelyard.store.db import Database
from modelyard.store.tables import RunRow

__all__ = ["Leases", "Reaped"]

_ERROR_LIMIT = 500


@dataclass(frozen=True)
class Reaped:
    """A running job whose lease expired, and what the reaper did with it."""

    job_id: str
    run_id: str | None
    status: Status  # queued (retry) | failed | cancelled
    reason: str


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 3] + "..."


class Leases:
    """Worker-side and reaper-side operations on the jobs of the store at ``home``."""

    def __init__(self, home: str | Path | None, lease_s: float) -> None:
        self.home = paths.home(home)
        self.lease_s = lease_s

    @property
    def db(self) -> Database:
        return control_database(self.home)

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_s)

    def claim(self, worker_id: str) -> Job | None:
        """Take the oldest queued job (queued → running, one more attempt), or None."""
        with self.db.session() as session:  # a cheap read first: idle workers poll often
            if session.scalar(select(JobRow.id).where(JobRow.status == Status.QUEUED).limit(1)) is None:
                return None
        with self.db.session(write=True, row_locks=True) as session:
            row = session.scalars(
                select(JobRow)
                .where(JobRow.status == Status.QUEUED)
                .order_by(JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            now = _jobs.clock()
            row.status, row.attempts, row.worker_id = Status.RUNNING, (row.attempts or 0) + 1, worker_id
            row.lease_expires_at, row.heartbeat_at = self._expiry(now), now
            row.started_at, row.finished_at = row.started_at or now, None
            session.flush()
            return job_from_row(row)

    def renew(self, job_id: str, worker_id: str) -> Literal["ok", "cancel", "lost"]:
        """Extend the lease; says whether the job was cancelled or is no longer ours."""
        with self.db.session(write=True) as session:
            row = session.get(JobRow, job_id, with_for_update=True)
            if row is None or row.status != Status.RUNNING or row.worker_id != worker_id:
                return "lost"
            now = _jobs.clock()
            row.lease_expires_at, row.heartbeat_at = self._expiry(now), now
            return "cancel" if row.cancel_requested else "ok"

    def set_run(self, job_id: str, worker_id: str, run_id: str) -> None:
        with self.db.session(write=True) as session:
            self._owned(session, job_id, worker_id).run_id = run_id

    def progress(self, job_id: str, worker_id: str, progress: dict[str, Any]) -> None:
        """Record progress; an epoch ending is also proof of life (renews the lease)."""
        with self.db.session(write=True) as session:
            row = self._owned(session, job_id, worker_id)
            now = _jobs.clock()
            row.progress_json = json.dumps(progress)
            row.lease_expires_at, row.heartbeat_at = self._expiry(now), now

    def finish(
        self, job_id: str, worker_id: str, status: Status, *, error: str | None = None, model_ref: str | None = None
    ) -> Job:
        """running → succeeded | failed | cancelled."""
        with self.db.session(write=True) as session:
            row = self._owned(session, job_id, worker_id)
            row.status, row.finished_at, row.lease_expires_at = status, _jobs.clock(), None
            row.error = None if error is None else _one_line(error)
            if model_ref is not None:
                row.model_ref = model_ref
            session.flush()
            return job_from_row(row)

    def release(self, job_id: str, worker_id: str, reason: str) -> None:
        """Give a job back to the queue without counting the attempt (graceful stop)."""
        with self.db.session(write=True) as session:
            row = self._owned(session, job_id, worker_id)
            row.status, row.worker_id, row.lease_expires_at = Status.QUEUED, None, None
            row.attempts = max(0, (row.attempts or 1) - 1)
            row.error = _one_line(reason)

    def reap(self) -> list[Reaped]:
        """Running jobs whose lease expired: retry (queued), or fail after max_attempts.

        Their runs are marked failed (or cancelled) here too, in the same transaction.
        """
        now = _jobs.clock()
        reaped = []
        with self.db.session(write=True) as session:
            rows = session.scalars(
                select(JobRow).where(JobRow.status == Status.RUNNING, JobRow.lease_expires_at < now).with_for_update()
            ).all()
            for row in rows:
                seen = row.heartbeat_at or row.started_at or row.created_at
                reason = f"no heartbeat for {(now - seen).total_seconds():.0f} s from worker {row.worker_id}"
                if row.cancel_requested:
                    row.status, row.error = Status.CANCELLED, _one_line(f"cancelled by user (worker lost: {reason})")
                elif (row.attempts or 0) < row.max_attempts:
                    row.status = Status.QUEUED
                    row.error = _one_line(f"attempt {row.attempts} lost ({reason}); retrying from the last checkpoint")
                    row.worker_id = None
                else:
                    row.status = Status.FAILED
                    row.error = _one_line(f"worker lost {row.attempts} times: {reason}")
                row.lease_expires_at = None
                if row.status != Status.QUEUED:
                    row.finished_at = now
                self._settle_run(session, row, reason, now)
                reaped.append(Reaped(row.id, row.run_id, row.status, reason))
        return reaped

    @staticmethod
    def _settle_run(session: Session, row: JobRow, reason: str, now: datetime) -> None:
        """The lost worker's run stops being ``running`` in the same transaction as its job,
        so no worker can claim the job and resume the run before it is settled."""
        run = session.get(RunRow, row.run_id) if row.run_id else None
        if run is not None and run.status == Status.RUNNING:
            run.status, run.finished_at = (Status.CANCELLED if row.status == Status.CANCELLED else Status.FAILED), now
            run.error = _one_line(f"worker lost: {reason}")

    @staticmethod
    def _owned(session: Session, job_id: str, worker_id: str) -> JobRow:
        row = session.get(JobRow, job_id, with_for_update=True)
        if row is None or row.status != Status.RUNNING or row.worker_id != worker_id:
            state = "gone" if row is None else f"{row.status} (worker {row.worker_id})"
            raise LeaseLostError(f"job {job_id} is no longer leased to worker {worker_id}: it is {state}")
        return row
