"""Who still uses what a delete would remove: the control plane's deployments and jobs.

The store knows nothing of the control plane, so ``ModelStore.delete`` and ``RunStore.delete``
take a hook (``modelyard.store.gc.InUse``) that they call inside their write transaction.
These are the control plane's: its routes pass them, and so do ``modelyard models delete``
and ``modelyard runs delete``, so a version that a deployment serves cannot be deleted
from either side, whether the server runs or not (its tables sit in the store's database).
A store where no server ever ran has no such tables, and then nothing uses anything.
"""

from __future__ import annotations

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from modelyard.server.tables import DeploymentRow, JobRow
from modelyard.status import Status

__all__ = ["deployments_serving", "jobs_resuming"]


def _has(session: Session, table: str) -> bool:
    return inspect(session.connection()).has_table(table)


def deployments_serving(session: Session, ref: str) -> list[str]:
    """``["deployment web (running)", ...]`` for each deployment of ``ref`` (an explicit ``NAME:N``).

    Stopped and failed deployments count too: their row still names the version, and a
    restart of the server or of the deployment would need its files.
    """
    if not _has(session, DeploymentRow.__tablename__):
        return []
    rows = session.scalars(select(DeploymentRow).where(DeploymentRow.model_ref == ref).order_by(DeploymentRow.name))
    return [f"deployment {row.name} ({row.status})" for row in rows]


def jobs_resuming(session: Session, run_id: str) -> list[str]:
    """``["job j-... (queued)"]`` for a queued or running job that trains (or will retry) run ``run_id``."""
    if not _has(session, JobRow.__tablename__):
        return []
    active = (Status.QUEUED, Status.RUNNING)
    rows = session.scalars(select(JobRow).where(JobRow.run_id == run_id, JobRow.status.in_(active)))
    return [f"job {row.id} ({row.status})" for row in rows]
