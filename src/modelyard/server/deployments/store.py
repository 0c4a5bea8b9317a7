"""Deployments as database rows (``deployments`` table of the store); the request body is ``request.py``.

The row holds what the user asked for (model version, replica count, batching options,
``desired`` state) and what the supervisor last saw (``status``, ``restarts``, ``error``,
the replicas' pids and ports in ``state_json``), so a restarted server knows what to
bring back and which leftover processes are its own.
"""

from __future__ import annotations

import builtins
import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select

from modelyard.errors import NotFoundError, StoreError
from modelyard.registry import closest
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.tables import DeploymentRow, control_database
from modelyard.store.db import Database
from modelyard.store.timestamps import iso, utcnow

__all__ = ["DeploymentStore", "row_dict"]


def row_dict(row: DeploymentRow) -> dict[str, Any]:
    """The stored part of a deployment's JSON form."""
    return {
        "name": row.name,
        "model": row.model_ref,
        "replica_count": row.replicas,
        "options": json.loads(row.options_json or "{}"),
        "desired": row.desired,
        "status": row.status,
        "error": row.error,
        "restarts": row.restarts,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


class DeploymentStore:
    """CRUD on the ``deployments`` table of the store at ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def db(self) -> Database:
        return control_database(self.home)

    def create(self, request: DeploymentRequest, model_ref: str) -> DeploymentRow:
        now = utcnow()
        with self.db.session(write=True) as session:
            existing = session.scalars(select(DeploymentRow).where(DeploymentRow.name == request.name)).first()
            if existing is not None:
                raise StoreError(
                    f"Deployment {request.name!r} already exists (model {existing.model_ref}, {existing.status}); "
                    f"delete it first or choose another name",
                    field="name",
                )
            row = DeploymentRow(
                id=secrets.token_hex(8),
                name=request.name,
                model_ref=model_ref,
                replicas=request.replicas,
                options_json=json.dumps(request.options()),
                desired="running",
                status="starting",
                restarts=0,
                created_at=now,
                updated_at=now,
                state_json="{}",
            )
            session.add(row)
        return row

    def get(self, name: str) -> DeploymentRow:
        with self.db.session() as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).first()
            if row is None:
                names = builtins.list(session.scalars(select(DeploymentRow.name).order_by(DeploymentRow.name)))
        if row is None:
            raise NotFoundError(_unknown(name, names), field="name")
        return row

    def list(self, *, desired: str | None = None) -> builtins.list[DeploymentRow]:
        query = select(DeploymentRow).order_by(DeploymentRow.name)
        if desired is not None:
            query = query.where(DeploymentRow.desired == desired)
        with self.db.session() as session:
            return builtins.list(session.scalars(query))

    def update(self, name: str, **values: Any) -> None:
        """Record what the supervisor saw; a row deleted meanwhile is left alone."""
        if "state" in values:
            values["state_json"] = json.dumps(values.pop("state"))
        with self.db.session(write=True) as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).first()
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    def delete(self, name: str) -> None:
        with self.db.session(write=True) as session:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).first()
            if row is not None:
                session.delete(row)


def _unknown(name: str, names: builtins.list[str]) -> str:
    if not names:
        return f"Unknown deployment {name!r}: there are no deployments yet (create one with POST /v1/deployments)"
    hint = closest(name, names)
    extra = f"; did you mean {hint!r}?" if hint else ""
    return f"Unknown deployment {name!r}{extra} (deployments: {', '.join(names[:10])})"
