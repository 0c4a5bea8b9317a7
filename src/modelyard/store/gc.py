"""Removing folders of the store: one at a time with its row (``trashed``), or every orphan at once (``collect``).

An orphan is a folder under ``artifacts/`` that no row owns: a version folder whose row is
gone, a run folder (checkpoints, plots) of a deleted run, or what an interrupted
registration (``.tmp-*``) or delete (``.trash-*``) left behind. A version folder without
a row may also be the only copy of a version after the database was restored from an
older backup, which is why ``collect`` only lists unless asked to remove, and why
``modelyard models gc --dry-run`` (list only) is the first step after restoring a backup.
With the S3 artifact store (``MODELYARD_ARTIFACTS_URL``) the bucket's keys are compared with the
rows too (``S3Store.orphans``): an orphan's ``path`` is then its ``s3://`` URL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.store import paths
from modelyard.store.db import database
from modelyard.store.tables import ModelVersionRow, RunRow

__all__ = ["InUse", "Orphan", "trashed", "collect", "folder_size"]

# Who still uses what a delete removes, asked inside its write transaction:
# (session, "name:N" or run id) → ["deployment web (running)", ...]; empty when nobody does.
InUse = Callable[[Session, str], list[str]]

TRASH_PREFIX = ".trash-"
TMP_PREFIX = ".tmp-"
# A registration writes its .tmp- folder (S3: its .tmp/ keys, then its copies) before its row commits; one this old is dead.
_TMP_GRACE_S = 3600.0


@dataclass(frozen=True)
class Orphan:
    path: Path | str  # a folder of the home, or an s3:// key prefix
    reason: str
    size_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "reason": self.reason, "size_bytes": self.size_bytes}


@contextmanager
def trashed(folder: Path) -> Iterator[None]:
    """Move ``folder`` aside while the block commits its row's removal; put it back if the block fails."""
    trash: Path | None = None
    if folder.exists():
        trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{secrets.token_hex(4)}")
        os.rename(folder, trash)
    try:
        yield
    except BaseException:
        if trash is not None and trash.exists():
            os.rename(trash, folder)
        raise
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _leftover(child: Path, now: float) -> str | None:
    if child.name.startswith(TRASH_PREFIX):
        return "left by an interrupted delete"
    if child.name.startswith(TMP_PREFIX) and now - child.stat().st_mtime > _TMP_GRACE_S:
        return "left by an interrupted registration"
    return None


def _orphans(home: Path, session: Session) -> list[Orphan]:
    now = time.time()
    found: list[tuple[Path, str]] = []
    versions = {(n, v) for n, v in session.execute(select(ModelVersionRow.name, ModelVersionRow.version))}
    models = paths.models_root(home)
    for folder in sorted(models.iterdir()) if models.is_dir() else []:
        for child in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not child.is_dir():
                continue
            reason = _leftover(child, now)
            if reason is None and child.name.isdigit() and (folder.name, int(child.name)) not in versions:
                reason = f"version folder of {folder.name}:{child.name}, which has no row"
            if reason is not None:
                found.append((child, reason))
    datasets = paths.datasets_root(home)  # uploads in flight (.tmp-*) and each name's registrations
    for folder in (
        [datasets, *sorted(c for c in datasets.iterdir() if c.is_dir() and not c.name.startswith("."))]
        if datasets.is_dir()
        else []
    ):
        for child in sorted(folder.iterdir()):
            reason = _leftover(child, now) if child.is_dir() else None
            if reason is not None:
                found.append((child, reason))
    run_ids = set(session.scalars(select(RunRow.id)))
    runs = paths.runs_root(home)
    for child in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not child.is_dir():
            continue
        reason = _leftover(child, now)
        if reason is None and not child.name.startswith(".") and child.name not in run_ids:
            reason = f"folder of run {child.name}, which has no row"
        if reason is not None:
            found.append((child, reason))
    return [Orphan(path, reason, folder_size(path)) for path, reason in found]


def collect(home: Path | None = None, *, remove: bool = False) -> list[Orphan]:
    """The orphaned folders of the store at ``home``; removed too when ``remove``.

    Runs under the write lock, so no registration is between renaming its folder and
    committing its row while the folders are compared with the rows.
    """
    from modelyard.store.artifacts import artifact_store
    from modelyard.store.s3 import S3Store

    home = paths.home(home)
    artifacts = artifact_store(home)
    bucket = artifacts if isinstance(artifacts, S3Store) else None
    with database(home).session(write=True) as session:
        found = _orphans(home, session)
        remote: list[tuple[str, str, int]] = []
        if bucket is not None:
            rows = session.execute(select(ModelVersionRow.name, ModelVersionRow.version))
            keep = {paths.model_key(n, v) for n, v in rows}
            remote = bucket.orphans(keep, written_before=time.time() - _TMP_GRACE_S)
        if remove:
            for orphan in found:
                shutil.rmtree(orphan.path)
            for key, _reason, _size in remote:
                bucket.remove(key)  # type: ignore[union-attr]  # remote is empty without a bucket
    return found + [Orphan(f"{artifacts.where}/{key}/", reason, size) for key, reason, size in remote]
