"""Jobs: training specs in a queue table (``jobs`` in the store's database).

A job moves ``queued → running → succeeded | failed | cancelled``. The server submits,
lists and cancels jobs here; workers claim and renew them through ``leases`` (same
table, same rules). A retraining job queued by a monitoring alert (``server/retrain``) is
submitted with ``submit_triggered``: the alert is kept beside the job (``job_triggers``) and
shown as its ``trigger``. Ids look like ``j-20261122-3fa9c1``; as for runs, any unique prefix
of the id or of its random part finds the job.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelyard._files import dumps_json
from modelyard.errors import InputError, StoreError
from modelyard.server.tables import JobRow, JobTriggerRow, control_database
from modelyard.status import Status, parse_status
from modelyard.store import paths
from modelyard.store.db import Database
from modelyard.store.ids import new_id, resolve_id
from modelyard.store.timestamps import iso, utcnow

__all__ = ["Job", "JobStore", "job_log_path", "clock"]

_JOB_ID = re.compile(r"^j-[0-9]{8}-[0-9a-f]{6}$")


def clock() -> datetime:
    """The clock of the job table (tests replace it to age leases)."""
    return utcnow()


def job_log_path(home: Path, job_id: str) -> Path:
    """``<home>/server/jobs/<job_id>.log``: the worker output of every attempt of one job."""
    if not _JOB_ID.match(job_id):  # ids come from the database; checked so no path can escape
        raise ValueError(f"not a job id: {job_id!r}")
    return home / "server" / "jobs" / f"{job_id}.log"


@dataclass(frozen=True)
class Job:
    """One job, detached from the database."""

    id: str
    name: str
    status: Status
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    run_id: str | None
    model_ref: str | None
    error: str | None
    progress: dict[str, Any] = field(default_factory=dict)
    submitted_by: str | None = None
    trigger: dict[str, Any] | None = None  # the monitoring alert that queued it (server/retrain)

    @property
    def final(self) -> bool:
        return self.status.final

    @property
    def worker_pid(self) -> int | None:
        """The worker process id (worker ids are ``<pid>@<host>``)."""
        head = (self.worker_id or "").partition("@")[0]
        return int(head) if head.isdigit() else None

    def to_dict(self, *, spec: bool = True) -> dict[str, Any]:
        """The REST form (``history`` is added by the API from the run store)."""
        out = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "run_id": self.run_id,
            "model_ref": self.model_ref,
            "error": self.error,
            "progress": {
                "epoch": 0,
                "epochs": self.spec.get("train", {}).get("epochs"),
                "fraction": 0.0,
                **self.progress,
            },
            "worker_id": self.worker_id,
            "worker_pid": self.worker_pid,
            "heartbeat_at": iso(self.heartbeat_at),
            "lease_expires_at": iso(self.lease_expires_at),
            "cancel_requested": self.cancel_requested,
            "submitted_by": self.submitted_by,
            "trigger": self.trigger,
        }
        if spec:
            out["spec"] = self.spec
        return out


def trigger_dict(row: JobTriggerRow) -> dict[str, Any]:
    """The REST form of the alert that queued a job."""
    model, _, version = row.model_ref.rpartition(":")
    return {
        "deployment": row.deployment,
        "model": model,
        "version": int(version),
        "check": row.check,
        "p_value": row.p_value,
        "window": row.window,
        "checks": json.loads(row.alert_json),
        "at": iso(row.created_at),
    }


def job_from_row(row: JobRow, trigger: JobTriggerRow | None = None) -> Job:
    return Job(
        id=row.id,
        name=row.name,
        status=Status.stored(row.status),
        spec=json.loads(row.spec_json),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=row.attempts or 0,
        max_attempts=row.max_attempts,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        heartbeat_at=row.heartbeat_at,
        cancel_requested=bool(row.cancel_requested),
        run_id=row.run_id,
        model_ref=row.model_ref,
        error=row.error,
        progress=json.loads(row.progress_json) if row.progress_json else {},
        submitted_by=row.submitted_by,
        trigger=trigger_dict(trigger) if trigger is not None else None,
    )


class JobStore:
    """Jobs of the store at ``home``: submit, read, cancel (workers use ``leases``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = paths.home(home)

    @property
    def db(self) -> Database:
        return control_database(self.home)

    def log_path(self, job_id: str) -> Path:
        return job_log_path(self.home, job_id)

    def submit(self, spec: dict[str, Any], *, max_attempts: int, submitted_by: str | None = None) -> Job:
        """Queue a job for ``spec`` (a resolved, validated spec dict)."""
        return self._submit(spec, max_attempts=max_attempts, submitted_by=submitted_by)[0]

    def submit_triggered(
        self, spec: dict[str, Any], *, trigger: JobTriggerRow, cooldown_s: float, max_attempts: int
    ) -> tuple[Job, bool]:
        """Queue a retraining job for ``spec`` unless the deployment of ``trigger`` has one already.

        Under the store's write lock, so concurrent alerts queue at most one job: refused (the
        existing job and False) while the deployment's last triggered job is queued or running,
        or was queued less than ``cooldown_s`` ago. Else the job and its trigger row are
        written in one transaction (True).
        """
        return self._submit(
            spec,
            max_attempts=max_attempts,
            submitted_by=f"alert:{trigger.deployment}"[:64],
            trigger=(trigger, cooldown_s),
        )

    def _submit(
        self,
        spec: dict[str, Any],
        *,
        max_attempts: int,
        submitted_by: str | None,
        trigger: tuple[JobTriggerRow, float] | None = None,
    ) -> tuple[Job, bool]:
        spec_json = dumps_json(spec, "spec", indent=None)
        for _attempt in range(5):
            now = clock()
            row = JobRow(
                id=new_id("j", now),
                name=str(spec["name"]),
                status=Status.QUEUED,
                spec_json=spec_json,
                created_at=now,
                attempts=0,
                max_attempts=max_attempts,
                cancel_requested=0,
                submitted_by=submitted_by,
            )
            try:
                with self.db.session(write=True) as session:
                    if trigger is not None:
                        earlier = _blocking_job(session, trigger[0].deployment_id, now, trigger[1])
                        if earlier is not None:
                            return earlier, False
                        trigger[0].job_id, trigger[0].created_at = row.id, now
                        session.add(row)
                        session.flush()  # the job row first: the trigger names it
                        session.add(trigger[0])
                    else:
                        session.add(row)
                return job_from_row(row, trigger[0] if trigger is not None else None), True
            except IntegrityError:  # the random part collided: draw again
                continue
        raise StoreError("Could not allocate a unique job id after 5 attempts", field="job_id")

    def get(self, job_id: str) -> Job:
        with self.db.session() as session:
            row = resolve(session, job_id)
            return job_from_row(row, session.get(JobTriggerRow, row.id))

    def list(self, status: str | None = None, limit: int = 50) -> builtins.list[Job]:
        """Newest first, optionally only jobs with ``status``."""
        wanted = None if status is None else parse_status(status)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InputError(
                f"Invalid value for `limit`: expected an integer from 1 to 1000, received {limit!r}", field="limit"
            )
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        if wanted is not None:
            query = query.where(JobRow.status == wanted)
        with self.db.session() as session:
            rows = builtins.list(session.scalars(query))
            found = select(JobTriggerRow).where(JobTriggerRow.job_id.in_([row.id for row in rows]))
            triggers = {t.job_id: t for t in session.scalars(found)} if rows else {}
            return [job_from_row(row, triggers.get(row.id)) for row in rows]

    def active_for_run(self, run_id: str) -> Job | None:
        """The queued or running job that trains run ``run_id`` (a full id), if any."""
        with self.db.session() as session:
            row = session.scalars(
                select(JobRow).where(JobRow.run_id == run_id, JobRow.status.in_((Status.QUEUED, Status.RUNNING)))
            ).first()
            return None if row is None else job_from_row(row)

    def cancel(self, job_id: str) -> Job:
        """queued → cancelled at once; running → cancel requested (its worker stops it)."""
        with self.db.session(write=True) as session:
            row = resolve(session, job_id)
            session.refresh(row, with_for_update=True)  # a worker claiming it right now goes first (PostgreSQL)
            if Status.stored(row.status).final:
                raise StoreError(
                    f"Job {row.id} already {row.status}; only queued or running jobs can be cancelled", field="status"
                )
            if row.status == Status.QUEUED:
                row.status, row.finished_at, row.error = Status.CANCELLED, clock(), "cancelled by user"
                row.lease_expires_at = None
            row.cancel_requested = 1
            session.flush()
            return job_from_row(row)


def _blocking_job(session: Session, deployment_id: str, now: datetime, cooldown_s: float) -> Job | None:
    """The deployment's last triggered job if it still holds off a new one (active, or within the cooldown)."""
    last = session.scalars(
        select(JobTriggerRow)
        .where(JobTriggerRow.deployment_id == deployment_id)
        .order_by(JobTriggerRow.created_at.desc())
        .limit(1)
    ).first()
    if last is None:
        return None
    job = session.get(JobRow, last.job_id)  # jobs are never deleted: always found
    if job is None or (Status.stored(job.status).final and (now - last.created_at).total_seconds() >= cooldown_s):
        return None
    return job_from_row(job, last)


def resolve(session: Session, job_id: str) -> JobRow:
    """The row of ``job_id`` (or a unique prefix of it or of its random part)."""
    return resolve_id(
        session, JobRow, job_id, noun="job", letter="j", hint=lambda _: "; list jobs with `modelyard jobs list`"
    )
