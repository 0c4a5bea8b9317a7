"""Versioned migrations of the store's tables (Alembic), the same revisions on SQLite and PostgreSQL.

The revisions ship in ``versions/`` inside the package and are run from here, in the
caller's transaction (under the store's write lock, so one process migrates and the others
then find it done); no ``env.py`` or other file of the store or of the user is executed.
Revision ``000N`` brings a store to schema version N. A store written before the store had
Alembic (schema 1, 2 or 3 in ``meta`` and no ``alembic_version`` table) is stamped at its
schema's revision first, so only the steps it lacks run and its rows stay.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection

__all__ = ["HEAD", "VERSION_TABLE", "revisions", "upgrade"]

logger = logging.getLogger(__name__)

#: The newest revision (schema version 3); a test checks it is the head of ``versions/``.
HEAD = "0003"
VERSION_TABLE = "alembic_version"
_HERE = Path(__file__).resolve().parent


def _script():  # noqa: ANN202 - alembic is imported only when a migration is due
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(_HERE))


def revisions() -> set[str]:
    """Every revision this release knows."""
    return {script.revision for script in _script().walk_revisions()}


def upgrade(conn: Connection, *, legacy_schema: int | None) -> list[str]:
    """Bring the database on ``conn`` to ``HEAD`` inside the caller's transaction; the revisions run, in order.

    ``legacy_schema``: the schema version of a store without an ``alembic_version`` table, stamped first.
    """
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    script = _script()
    if legacy_schema:
        MigrationContext.configure(conn).stamp(script, f"{legacy_schema:04d}")
    ran: list[str] = []

    def steps(revision, _context):  # noqa: ANN001, ANN202 - alembic's callback signature
        found = script._upgrade_revs(HEAD, revision)
        ran.extend(step.revision.revision for step in found)
        return found

    context = MigrationContext.configure(conn, opts={"fn": steps, "script": script})
    with Operations.context(context):
        context.run_migrations()
    if ran:
        logger.info("store migrations applied: %s", ", ".join(ran))
    return ran
