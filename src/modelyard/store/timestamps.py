"""Time stamps of the store: aware UTC datetimes in Python, ISO 8601 text in JSON answers."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["utcnow", "iso"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """``2026-11-22T09:30:00.123456+00:00`` (or None), as every JSON answer writes a time."""
    return None if value is None else value.isoformat()
