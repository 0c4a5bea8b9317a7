"""Ids of stored rows (runs ``r-…``, jobs ``j-…``) and finding a row by a prefix of its id.

An id is ``<letter>-<YYYYMMDD>-<6 hex>``; as in git, any unique prefix of the whole id or
of its random part (``3fa9``) finds the row, newest first when several would.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from modelyard.errors import InputError, NotFoundError

__all__ = ["new_id", "resolve_id"]

_ID_CHARS = re.compile(r"^[a-z0-9-]+$")
Row = TypeVar("Row")


def new_id(letter: str, now: datetime) -> str:
    """A fresh id such as ``r-20261122-3fa9c1`` (the date keeps ids sortable and readable)."""
    return f"{letter}-{now:%Y%m%d}-{secrets.token_hex(3)}"


def resolve_id(
    session: Session, table: type[Row], given: Any, *, noun: str, letter: str, hint: Callable[[str], str]
) -> Row:
    """The row of ``table`` whose id is ``given`` or uniquely starts with it (or its random part does).

    ``hint(text)`` is the end of the "unknown" message (what the caller can do next), e.g.
    ``"; did you mean 'r-…'?"``.
    """
    field = f"{noun}_id"
    text = str(given).strip().lower()
    if not text or not _ID_CHARS.match(text):
        raise InputError(
            f"Invalid {noun} id {given!r}: expected letters, digits and '-' such as {letter}-20261122-3fa9c1",
            field=field,
        )
    row = session.get(table, text)
    if row is not None:
        return row
    column: Any = table.id  # type: ignore[attr-defined]
    found = session.scalars(
        select(table)
        .where(or_(column.startswith(text), column.like(f"{letter}-________-{text}%")))
        .order_by(table.created_at.desc())  # type: ignore[attr-defined]
        .limit(6)
    ).all()
    if len(found) == 1:
        return found[0]
    if found:
        shown = ", ".join(r.id for r in found[:5]) + (", ..." if len(found) > 5 else "")  # type: ignore[attr-defined]
        raise InputError(f"Ambiguous {noun} id {given!r}: matches {shown}; type more characters", field=field)
    raise NotFoundError(
        f"Unknown {noun} {given!r}: no {noun} id (or its part after the date) starts with it{hint(text)}", field=field
    )
