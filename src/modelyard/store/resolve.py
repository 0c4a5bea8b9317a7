"""One place that turns a model reference into a version row, and the aliases it reads.

Every command and route that takes a model (load, predict, eval, serve, compress, explain,
export, deployments, the HTTP APIs) goes through ``ModelStore.get`` and so through
``resolve``, which reads with the standard library's sqlite3 (``modelyard.store.sqlite``: on a
read-only connection, or on a write session's own connection inside its transaction):

- ``NAME:N``: that version;
- ``NAME@ALIAS``: the version the alias points to (set with ``modelyard models alias set``);
- ``NAME:latest``: the newest version, whatever it is;
- ``NAME``: the version aliased ``production`` if that alias is set, else the newest
  *trained* version; a derived one (int8, pruned, distilled, exported) only when the name
  has no trained version at all. Registering a compressed or exported copy therefore never
  moves what ``NAME`` serves.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections import defaultdict
from types import SimpleNamespace

from modelyard.errors import NotFoundError
from modelyard.store.kinds import TRAINED, kind_of
from modelyard.store.refs import parse_ref, unknown_name_message
from modelyard.store.sqlite import query

__all__ = ["PRODUCTION", "VERSION_COLUMNS", "resolve", "resolve_with_rule", "aliases_by_version", "alias_rows", "names"]

PRODUCTION = "production"
# The columns of a ``model_versions`` row that make a ModelVersion (``records.model_version``).
VERSION_COLUMNS = "id, name, version, run_id, created_at, metrics_json, lineage_json, task, description, size_bytes"


def resolve(connection: sqlite3.Connection, ref: str) -> SimpleNamespace:
    """The row ``ref`` names (see the module docstring); NotFoundError naming what exists."""
    return resolve_with_rule(connection, ref)[0]


def resolve_with_rule(connection: sqlite3.Connection, ref: str) -> tuple[SimpleNamespace, str]:
    """The row and the rule that chose it, in words (``alias production``, ``newest trained version``, ...)."""
    parsed = parse_ref(ref)
    name = parsed.name
    rows = query(
        connection, f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version DESC", (name,)
    )
    if not rows:
        raise NotFoundError(unknown_name_message(name, names(connection)), field="ref")
    by_version = {row.version: row for row in rows}
    if parsed.version is not None:
        if parsed.version in by_version:
            return by_version[parsed.version], "explicit version"
        existing = ", ".join(str(v) for v in sorted(by_version))
        raise NotFoundError(f"Model {name!r} has no version {parsed.version}; its versions are {existing}", field="ref")
    if parsed.latest:
        return rows[0], "newest version (:latest)"
    alias = parsed.alias or PRODUCTION
    pointer = query(connection, "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
    if pointer and pointer[0].version in by_version:
        return by_version[pointer[0].version], f"alias {alias}"
    if parsed.alias is not None:
        known = ", ".join(f"{name}@{a.alias}" for a in alias_rows(connection, name)) or "none"
        raise NotFoundError(
            f"Model {name!r} has no alias {alias!r} (its aliases: {known}); "
            f"set one with `modelyard models alias set {name}:N {alias}`",
            field="ref",
        )
    trained = next((row for row in rows if kind_of(json.loads(row.lineage_json or "{}")) == TRAINED), None)
    if trained is not None:
        return trained, "newest trained version"
    return rows[0], "newest version (the model has no trained version)"


def names(connection: sqlite3.Connection) -> builtins.list[str]:
    """Every registered model name, sorted."""
    return [row.name for row in query(connection, "SELECT DISTINCT name FROM model_versions ORDER BY name")]


def alias_rows(connection: sqlite3.Connection, name: str | None = None) -> builtins.list[SimpleNamespace]:
    """``(name, alias, version, updated_at)`` rows of every alias (of ``name`` if given), by name then alias."""
    where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
    return query(
        connection, f"SELECT name, alias, version, updated_at FROM model_aliases {where} ORDER BY name, alias", params
    )


def aliases_by_version(
    connection: sqlite3.Connection, name: str | None = None
) -> dict[tuple[str, int], tuple[str, ...]]:
    """``(name, version) → (alias, ...)`` for every alias (of ``name`` if given)."""
    found: dict[tuple[str, int], builtins.list[str]] = defaultdict(builtins.list)
    for row in alias_rows(connection, name):
        found[(row.name, row.version)].append(row.alias)
    return {key: tuple(values) for key, values in found.items()}
