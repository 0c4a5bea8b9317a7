"""The control plane's tables: training jobs, what triggered a job, deployments, beside the store's own.

They live on their own metadata, so the run and model store knows nothing of them;
``control_database`` opens the store's database and creates them there on first use.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard.store.db import Database, database
from modelyard.store.tables import UTCDateTime

__all__ = ["ControlBase", "JobRow", "JobTriggerRow", "DeploymentRow", "control_database"]


class ControlBase(DeclarativeBase):
    pass


class JobRow(ControlBase):
    """A training job of the control plane: a spec in a queue, leased by one worker at a time.

    status: queued → running → succeeded | failed | cancelled (a lost lease puts a running
    job back to queued while attempts < max_attempts). ``run_id`` is set on the first
    attempt and reused by every retry, so a job resumes its own run and registers at most
    one model version (registration is idempotent per run).
    """

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str | None] = mapped_column(String(32))
    model_ref: Mapped[str | None] = mapped_column(String(96))
    error: Mapped[str | None] = mapped_column(Text)
    progress_json: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str | None] = mapped_column(String(64))


class JobTriggerRow(ControlBase):
    """The monitoring alert that queued a retraining job (``server/retrain``): one row per such job.

    Its own table (the ``jobs`` table of an existing store is never altered): the job's id, the
    deployment (``deployment_id`` is unique per creation, so a deployment made again under the
    same name starts without a cooldown), the version served and the check that failed.
    """

    __tablename__ = "job_triggers"
    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(32), index=True)
    deployment: Mapped[str] = mapped_column(String(64))
    model_ref: Mapped[str] = mapped_column(String(96))
    check: Mapped[str] = mapped_column(String(32))
    p_value: Mapped[float | None] = mapped_column(Float)
    window: Mapped[int] = mapped_column(Integer)
    alert_json: Mapped[str] = mapped_column(Text)  # every failed check of the window
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DeploymentRow(ControlBase):
    """A deployment: a model version served by ``replicas`` supervised serving processes.

    ``desired`` is what the user asked for (running | stopped); ``status`` is what the
    supervisor observed (starting | running | degraded | failed | stopped). A server
    restart brings every ``desired == running`` deployment back up.
    """

    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model_ref: Mapped[str] = mapped_column(String(96))
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    desired: Mapped[str] = mapped_column(String(16), default="running")
    status: Mapped[str] = mapped_column(String(16), default="starting")
    error: Mapped[str | None] = mapped_column(Text)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state_json: Mapped[str] = mapped_column(Text, default="{}")


def control_database(home: Path) -> Database:
    """The database of the store at ``home``, with the control plane's tables in it."""
    db = database(home)
    db.ensure_tables(ControlBase.metadata)
    return db
