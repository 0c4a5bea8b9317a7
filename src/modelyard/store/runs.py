"""Training runs: status, resolved spec, environment, per-epoch metrics and a folder.

A run moves ``queued → running → succeeded | failed | cancelled | interrupted | pruned`` (``modelyard.status``). A
running process calls ``heartbeat`` (``log_epoch`` counts as one); ``reap_stale`` marks runs whose
process died without saying so as failed, and ``settle_stale`` does that for one run that is about to
be resumed. Ids look like ``r-20261122-3fa9c1`` and, as in
git, any unique prefix of the id or of its random part (``3fa9``) finds the run.
"""

from __future__ import annotations

import builtins
import logging
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelyard._files import dumps_json
from modelyard.errors import InputError, SpecError, StoreError
from modelyard.registry import closest
from modelyard.status import Status, parse_status
from modelyard.store import paths
from modelyard.store.db import Database, database
from modelyard.store.gc import InUse, trashed
from modelyard.store.ids import new_id, resolve_id
from modelyard.store.owner import read_owner
from modelyard.store.records import RunRecord, run_record
from modelyard.store.tables import MetricRow, RunRow
from modelyard.store.timestamps import utcnow

if TYPE_CHECKING:
    from modelyard.spec import Spec

__all__ = ["RunStore", "RunRecord"]

logger = logging.getLogger(__name__)

_ERROR_LIMIT = 500
# A training process beats every HEARTBEAT_S seconds (workflow's heartbeat thread, besides each
# epoch); a run silent for STALE_AFTER_S is taken for dead, leaving room for a busy machine.
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0


def _now() -> datetime:
    """The clock of this module (tests replace it to age heartbeats)."""
    return utcnow()


def _new_id(now: datetime) -> str:
    return new_id("r", now)


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 3] + "..."


def _as_float(value: Any) -> float | None:
    """A metric value as float; None for values that are not a single number."""
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy/torch scalars
        item = value.item()
        return float(item) if isinstance(item, numbers.Real) else None
    return None


@dataclass
class _Pending:
    """Metric rows of one epoch, split from what cannot be a float."""

    rows: dict[str, float | None] = field(default_factory=dict)
    skipped: builtins.list[str] = field(default_factory=builtins.list)


class RunStore:
    """Runs of the store at ``home`` (default ``$MODELYARD_HOME`` or ``~/.modelyard``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = paths.home(home)

    @property
    def db(self) -> Database:
        return database(self.home)

    # -- lifecycle -------------------------------------------------------------------

    def create(self, spec: Mapping[str, Any] | Spec, env: Mapping[str, Any] | None = None) -> RunRecord:
        """Record a new queued run of ``spec`` (the resolved spec) with its environment."""
        spec_dict = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
        name = spec_dict.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"Missing required field `name`: expected the spec's name, received {name!r}", field="name")
        spec_json, env_json = dumps_json(spec_dict, "spec"), dumps_json(dict(env or {}), "env")
        for _attempt in range(5):
            now = _now()
            row = RunRow(
                id=_new_id(now), name=name, status=Status.QUEUED, spec_json=spec_json, env_json=env_json, created_at=now
            )
            try:
                with self.db.session(write=True) as session:
                    session.add(row)
                return self.get(row.id)
            except IntegrityError:  # the 24-bit random part collided: draw again
                continue
        raise StoreError("Could not allocate a unique run id after 5 attempts", field="run_id")

    def start(self, run_id: str) -> RunRecord:
        """queued (or failed/cancelled/interrupted, to resume) → running."""

        def apply(row: RunRow, now: datetime) -> None:
            row.status, row.started_at, row.heartbeat_at = Status.RUNNING, now, now
            row.finished_at, row.error = None, None

        return self._transition(run_id, (Status.QUEUED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED), apply)

    def heartbeat(self, run_id: str) -> None:
        """Say the run's process is alive; a run no longer running raises StoreError."""
        self._transition(run_id, (Status.RUNNING,), lambda row, now: setattr(row, "heartbeat_at", now))

    def finish(self, run_id: str, summary: Mapping[str, Any] | None = None, model_ref: str | None = None) -> RunRecord:
        """running → succeeded, storing final metrics/timings and the registered model."""
        summary_json = dumps_json(dict(summary or {}), "summary")

        def apply(row: RunRow, now: datetime) -> None:
            row.status, row.finished_at, row.heartbeat_at = Status.SUCCEEDED, now, now
            row.summary_json, row.model_ref = summary_json, model_ref

        return self._transition(run_id, (Status.RUNNING,), apply)

    def fail(self, run_id: str, error: str | BaseException) -> RunRecord:
        """queued/running → failed with a one-line reason."""
        message = _one_line(f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error)

        def apply(row: RunRow, now: datetime) -> None:
            row.status, row.finished_at, row.error = Status.FAILED, now, message

        return self._transition(run_id, (Status.QUEUED, Status.RUNNING), apply)

    def cancel(self, run_id: str, reason: str = "cancelled by user") -> RunRecord:
        """queued/running/interrupted → cancelled."""

        def apply(row: RunRow, now: datetime) -> None:
            row.status, row.finished_at, row.error = Status.CANCELLED, now, _one_line(reason)

        return self._transition(run_id, (Status.QUEUED, Status.RUNNING, Status.INTERRUPTED), apply)

    def interrupt(self, run_id: str, reason: str) -> RunRecord:
        """running → interrupted (SIGTERM or Ctrl-C; ``train --resume`` continues it)."""

        def apply(row: RunRow, now: datetime) -> None:
            row.status, row.finished_at, row.error = Status.INTERRUPTED, now, _one_line(reason)

        return self._transition(run_id, (Status.RUNNING,), apply)

    def prune(self, run_id: str, reason: str) -> RunRecord:
        """running → pruned: a tuning trial stopped by its pruner (``modelyard tune``); final, never resumed."""

        def apply(row: RunRow, now: datetime) -> None:
            row.status, row.finished_at, row.error = Status.PRUNED, now, _one_line(reason)

        return self._transition(run_id, (Status.RUNNING,), apply)

    def set_model(self, run_id: str, model_ref: str) -> RunRecord:
        """Name the version a succeeded run registered after it finished (the best trial of a tune)."""
        return self._transition(run_id, (Status.SUCCEEDED,), lambda row, now: setattr(row, "model_ref", model_ref))

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, Any]) -> builtins.list[str]:
        """Store one row per numeric metric of ``epoch``; returns the keys skipped.

        Values that are not one number (confusion matrices, reports) are skipped: put
        them in ``finish(summary=...)``. Logging an epoch again replaces its values
        (a run resumed from a checkpoint repeats epochs). Counts as a heartbeat.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise InputError(f"Invalid value for `epoch`: expected an integer >= 0, received {epoch!r}", field="epoch")
        pending = _Pending()
        for key, value in metrics.items():
            number = _as_float(value)
            if number is None:
                pending.skipped.append(str(key))
            else:
                pending.rows[str(key)] = number if math.isfinite(number) else None
        with self.db.session(write=True) as session:
            row = self._resolve(session, run_id)
            if pending.rows:
                session.execute(
                    delete(MetricRow).where(
                        MetricRow.run_id == row.id, MetricRow.epoch == epoch, MetricRow.key.in_(pending.rows)
                    )
                )
                session.add_all(MetricRow(run_id=row.id, epoch=epoch, key=k, value=v) for k, v in pending.rows.items())
            if row.status == Status.RUNNING:
                row.heartbeat_at = _now()
        if pending.skipped:
            logger.debug("run %s epoch %d: skipped non-numeric metrics %s", run_id, epoch, pending.skipped)
        return pending.skipped

    def reap_stale(
        self, max_age_s: float, *, run_id: str | None = None, why: str = "process died?"
    ) -> builtins.list[str]:
        """Mark running runs (or only ``run_id``) without a heartbeat for ``max_age_s`` seconds as failed."""
        now = _now()
        cutoff = now - timedelta(seconds=max_age_s)
        last_seen = func.coalesce(RunRow.heartbeat_at, RunRow.started_at, RunRow.created_at)
        reaped = []
        with self.db.session(write=True) as session:
            query = select(RunRow).where(RunRow.status == Status.RUNNING, last_seen <= cutoff)
            if run_id is not None:
                query = query.where(RunRow.id == self._resolve(session, run_id).id)
            for row in session.scalars(query).all():
                seen = row.heartbeat_at or row.started_at or row.created_at
                age = int((now - seen).total_seconds())
                row.status, row.finished_at = Status.FAILED, now
                row.error = f"no heartbeat for {age}s ({why})"
                reaped.append(row.id)
        if reaped:
            logger.info("marked %d stale run(s) as failed: %s", len(reaped), ", ".join(reaped))
        return reaped

    def settle_stale(self, run_id: str) -> RunRecord:
        """Before resuming: a ``running`` run whose process is gone becomes ``failed`` (``reap_stale``).

        Gone means its recorded process is dead on this machine, or its heartbeat is older than
        ``STALE_AFTER_S``. A run that still looks alive is a StoreError saying what to do.
        """
        record = self.get(run_id)
        if record.status != Status.RUNNING:
            return record
        owner = read_owner(record.path)
        if owner is not None and owner.alive() is False:
            self.reap_stale(0, run_id=record.id, why=f"its process {owner.pid} on {owner.host} is gone")
        else:
            self.reap_stale(STALE_AFTER_S, run_id=record.id)
        record = self.get(record.id)
        if record.status == Status.RUNNING:
            seen = record.heartbeat_at or record.started_at or record.created_at
            where = f" by process {owner.pid} on {owner.host}" if owner is not None else ""
            raise StoreError(
                f"Run {record.id} is still running{where} (last heartbeat {int((_now() - seen).total_seconds())}s "
                f"ago); it can be resumed once it stops or has no heartbeat for {STALE_AFTER_S:.0f}s, "
                f"or stop it with `modelyard runs cancel {record.id}`",
                field="status",
            )
        return record

    # -- reading ---------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        """The run with id (or unique id prefix) ``run_id``, with its metric history."""
        with self.db.session() as session:
            row = self._resolve(session, run_id)
            return self._records(session, [row])[0]

    def run_dir(self, run_id: str) -> Path:
        """The run's artifact folder ``artifacts/runs/<id>/`` (created if missing)."""
        with self.db.session() as session:
            row_id = self._resolve(session, run_id).id
        return paths.ensure_dir(paths.run_dir(self.home, row_id))

    def checkpoint_dir(self, run_id: str) -> Path:
        """``artifacts/runs/<id>/checkpoints/`` (created if missing)."""
        return paths.ensure_dir(self.run_dir(run_id) / "checkpoints")

    def list(self, name: str | None = None, status: str | None = None, limit: int = 50) -> builtins.list[RunRecord]:
        """Newest runs first, optionally only of spec ``name`` and/or with ``status``."""
        wanted = None if status is None else parse_status(status)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"Invalid value for `limit`: expected an integer >= 1, received {limit!r}", field="limit")
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
        if name is not None:
            query = query.where(RunRow.name == name)
        if wanted is not None:
            query = query.where(RunRow.status == wanted)
        with self.db.session() as session:
            return self._records(session, builtins.list(session.scalars(query)))

    def delete(self, run_id: str, *, in_use: InUse | None = None) -> RunRecord:
        """Remove a finished run: its row, metric history and folder (checkpoints, plots, logs).

        A queued or running run is refused (cancel it first), and so is one that
        ``in_use(session, run_id)`` names a user of (the control plane's job that will retry
        it: ``modelyard.server.registry.in_use``), checked in the delete's write transaction.
        A model version the run registered stays: its folder holds its own spec, weights and
        per-epoch metrics.
        """
        with self.db.session(write=True) as session:
            row = self._resolve(session, run_id)
            record = self._records(session, [row])[0]
            if record.status in (Status.QUEUED, Status.RUNNING):
                raise StoreError(
                    f"Refused to delete run {row.id}: it is {record.status}; cancel it first "
                    f"(`modelyard runs cancel {row.id}`)",
                    field="run_id",
                )
            users = in_use(session, row.id) if in_use is not None else []
            if users:
                raise StoreError(
                    f"Refused to delete run {row.id}: {', '.join(users)} will resume it; cancel that first",
                    field="run_id",
                )
            session.execute(delete(MetricRow).where(MetricRow.run_id == row.id))
            session.delete(row)
            session.flush()
            with trashed(paths.run_dir(self.home, row.id)):
                session.commit()
        return record

    # -- internals -------------------------------------------------------------------

    def _transition(
        self, run_id: str, allowed: tuple[Status, ...], apply: Callable[[RunRow, datetime], None]
    ) -> RunRecord:
        with self.db.session(write=True) as session:
            row = self._resolve(session, run_id)
            now = _now()
            if row.status not in allowed:
                seen = ""
                if row.status == Status.RUNNING and row.heartbeat_at is not None:
                    seen = f" (last heartbeat {int((now - row.heartbeat_at).total_seconds())}s ago)"
                raise StoreError(
                    f"Run {row.id} is {row.status}{seen}; this needs a run that is {' or '.join(allowed)}",
                    field="status",
                )
            apply(row, now)
            session.flush()
            return self._records(session, [row])[0]

    def _resolve(self, session: Session, run_id: str) -> RunRow:
        def hint(text: str) -> str:
            recent = session.scalars(select(RunRow.id).order_by(RunRow.created_at.desc()).limit(1000)).all()
            near = closest(text, builtins.list(recent))
            return f"; did you mean {near!r}?" if near else ("" if recent else "; there are no runs yet")

        return resolve_id(session, RunRow, run_id, noun="run", letter="r", hint=hint)

    def _records(self, session: Session, rows: builtins.list[RunRow]) -> builtins.list[RunRecord]:
        """Rows → records, loading every run's metric history in one query."""
        history: dict[str, dict[int, dict[str, Any]]] = {row.id: {} for row in rows}
        if rows:
            metrics = session.scalars(
                select(MetricRow).where(MetricRow.run_id.in_(history)).order_by(MetricRow.epoch, MetricRow.id)
            )
            for m in metrics:
                epoch_row = history[m.run_id].setdefault(m.epoch, {"epoch": m.epoch})
                epoch_row[m.key] = math.nan if m.value is None else m.value
        return [
            run_record(row, [history[row.id][e] for e in sorted(history[row.id])], paths.run_dir(self.home, row.id))
            for row in rows
        ]
