"""The privacy ledger: the epsilon each differentially private run spent, per data set (docs/privacy.md).

A data set is named by its resolved source spec (``data.source`` with every default filled in,
hashed): the same source read by two specs with other preprocessing or splits is the same
data set, so its budget is shared. Privacy losses of runs on the same data add up (basic
composition: epsilons and deltas sum), so a run whose ``train.privacy.budget`` the spent epsilon
plus its own would exceed is refused before it is created. A run is charged its full requested
epsilon when it starts, since a run stopped halfway has still released its checkpoints.

The table lives on its own metadata beside the store's, created on first use
(``Database.ensure_tables``), like the control plane's tables.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Float, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modelyard.errors import SpecError
from modelyard.store.db import Database, database
from modelyard.store.paths import home as resolve_home
from modelyard.store.tables import UTCDateTime

__all__ = ["PrivacySpendRow", "dataset_id", "spent", "check_budget", "charge"]


class _LedgerBase(DeclarativeBase):
    pass


class PrivacySpendRow(_LedgerBase):
    __tablename__ = "privacy_ledger"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def dataset_id(source: dict[str, Any]) -> str:
    """The ledger's name for the data of a resolved ``data.source`` (sha256 of its canonical JSON)."""
    return hashlib.sha256(json.dumps(source, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _db(home: str | Path | None) -> Database:
    db = database(resolve_home(home))
    db.ensure_tables(_LedgerBase.metadata)
    return db


def spent(home: str | Path | None, dataset: str) -> float:
    """The epsilon runs of this store have spent on ``dataset`` so far."""
    with _db(home).session() as session:
        total = session.scalar(select(func.sum(PrivacySpendRow.epsilon)).where(PrivacySpendRow.dataset == dataset))
    return float(total or 0.0)


def check_budget(home: str | Path | None, dataset: str, *, epsilon: float, budget: float | None) -> None:
    """Refuse a run whose epsilon would take ``dataset`` past ``budget`` (nothing is written)."""
    if budget is None:
        return
    used = spent(home, dataset)
    if used + epsilon > budget * (1 + 1e-12):
        raise SpecError(
            f"Invalid value for `train.privacy.epsilon`: this data set's privacy budget is {budget:g} and "
            f"{used:g} is spent, so at most {max(budget - used, 0.0):g} is left; received {epsilon:g}",
            field="train.privacy.epsilon",
        )


def charge(home: str | Path | None, dataset: str, *, run_id: str, epsilon: float, delta: float) -> None:
    """Record that ``run_id`` spends ``epsilon`` on ``dataset``; charging a run again changes nothing (resume)."""
    with _db(home).session(write=True) as session:
        if session.get(PrivacySpendRow, run_id) is None:
            session.add(
                PrivacySpendRow(
                    run_id=run_id, dataset=dataset, epsilon=epsilon, delta=delta, created_at=datetime.now(timezone.utc)
                )
            )
