"""One place that turns a model reference into a version row, and the aliases it reads.

Every command and route that takes a model (load, predict, eval, serve, compress, explain,
export, deployments, the HTTP APIs) goes through ``ModelStore.get`` and so through
``resolve``:

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
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.errors import NotFoundError
from modelyard.store.kinds import TRAINED, kind_of
from modelyard.store.refs import parse_ref, unknown_name_message
from modelyard.store.tables import ModelAliasRow, ModelVersionRow

__all__ = ["PRODUCTION", "resolve", "resolve_with_rule", "aliases_by_version", "alias_rows"]

PRODUCTION = "production"


def resolve(session: Session, ref: str) -> ModelVersionRow:
    """The row ``ref`` names (see the module docstring); NotFoundError naming what exists."""
    return resolve_with_rule(session, ref)[0]


def resolve_with_rule(session: Session, ref: str) -> tuple[ModelVersionRow, str]:
    """The row and the rule that chose it, in words (``alias production``, ``newest trained version``, ...)."""
    parsed = parse_ref(ref)
    name = parsed.name
    rows = builtins.list(
        session.scalars(
            select(ModelVersionRow).where(ModelVersionRow.name == name).order_by(ModelVersionRow.version.desc())
        )
    )
    if not rows:
        names = builtins.list(session.scalars(select(ModelVersionRow.name).distinct().order_by(ModelVersionRow.name)))
        raise NotFoundError(unknown_name_message(name, names), field="ref")
    by_version = {row.version: row for row in rows}
    if parsed.version is not None:
        if parsed.version in by_version:
            return by_version[parsed.version], "explicit version"
        existing = ", ".join(str(v) for v in sorted(by_version))
        raise NotFoundError(f"Model {name!r} has no version {parsed.version}; its versions are {existing}", field="ref")
    if parsed.latest:
        return rows[0], "newest version (:latest)"
    alias = parsed.alias or PRODUCTION
    pointer = session.get(ModelAliasRow, (name, alias))
    if pointer is not None and pointer.version in by_version:
        return by_version[pointer.version], f"alias {alias}"
    if parsed.alias is not None:
        known = ", ".join(f"{name}@{a.alias}" for a in alias_rows(session, name)) or "none"
        raise NotFoundError(
            f"Model {name!r} has no alias {alias!r} (its aliases: {known}); "
            f"set one with `modelyard models alias set {name}:N {alias}`",
            field="ref",
        )
    trained = next((row for row in rows if kind_of(json.loads(row.lineage_json or "{}")) == TRAINED), None)
    if trained is not None:
        return trained, "newest trained version"
    return rows[0], "newest version (the model has no trained version)"


def alias_rows(session: Session, name: str | None = None) -> builtins.list[ModelAliasRow]:
    query = select(ModelAliasRow).order_by(ModelAliasRow.name, ModelAliasRow.alias)
    if name is not None:
        query = query.where(ModelAliasRow.name == name)
    return builtins.list(session.scalars(query))


def aliases_by_version(session: Session, name: str | None = None) -> dict[tuple[str, int], tuple[str, ...]]:
    """``(name, version) → (alias, ...)`` for every alias (of ``name`` if given)."""
    found: dict[tuple[str, int], builtins.list[str]] = defaultdict(builtins.list)
    for row in alias_rows(session, name):
        found[(row.name, row.version)].append(row.alias)
    return {key: tuple(values) for key, values in found.items()}
