"""What the stores hand out: plain dataclasses, detached from the database.

``RunRecord`` is one training run with its metric history; ``ModelVersion`` is one
registered model version, which loads its spec, weights and preprocessing from its
folder on demand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard._files import read_json, to_jsonable
from modelyard.errors import NotFoundError, StoreError
from modelyard.status import Status
from modelyard.store.checksums import verified
from modelyard.store.kinds import kind_of, parent_of
from modelyard.store.timestamps import iso

if TYPE_CHECKING:
    import torch

    from modelyard.store.tables import ModelVersionRow, RunRow

__all__ = [
    "RunRecord",
    "ModelVersion",
    "Alias",
    "WEIGHTS_FILE",
    "SPEC_FILE",
    "PREPROCESS_FILE",
    "METRICS_FILE",
    "LINEAGE_FILE",
    "SUMMARY_FILE",
]

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
PREPROCESS_FILE = "preprocess.json"
METRICS_FILE = "metrics.json"
LINEAGE_FILE = "lineage.json"
SUMMARY_FILE = "summary.json"  # modelyard.version_summary: what `models show` prints, without torch


@dataclass(frozen=True)
class RunRecord:
    """One run. ``history`` is ``[{"epoch": 1, "loss": ..., "val_loss": ...}, ...]`` by epoch."""

    id: str
    name: str
    status: Status
    spec: dict[str, Any]
    env: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: str | None
    model_ref: str | None
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None  # artifacts/runs/<id>/ (may not exist yet)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (or to the last heartbeat while running)."""
        end = self.finished_at or self.heartbeat_at
        if self.started_at is None or end is None:
            return None
        return (end - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the CLI and the server."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "spec": self.spec,
            "env": self.env,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "duration_s": self.duration_s,
            "error": self.error,
            "model_ref": self.model_ref,
            "summary": self.summary,
            "history": to_jsonable(self.history),  # NaN → None
        }


def run_record(row: RunRow, history: list[dict[str, Any]], path: Path) -> RunRecord:
    return RunRecord(
        id=row.id,
        name=row.name,
        status=Status.stored(row.status),
        spec=json.loads(row.spec_json),
        env=json.loads(row.env_json),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        error=row.error,
        model_ref=row.model_ref,
        summary=json.loads(row.summary_json) if row.summary_json else {},
        history=history,
        path=path,
    )


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version and its folder ``artifacts/models/<name>/<version>/``."""

    name: str
    version: int
    run_id: str | None
    created_at: datetime
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    task: str | None
    description: str
    path: Path
    size_bytes: int
    aliases: tuple[str, ...] = ()  # NAME@ALIAS pointers to this version when it was read

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def kind(self) -> str:
        """trained, int8, pruned, distilled or exported (from the lineage)."""
        return kind_of(self.lineage)

    @property
    def parent(self) -> str | None:
        """The version this one was derived from (compression, export), if any."""
        return parent_of(self.lineage)

    def file(self, filename: str) -> Path:
        """The path of one of the version's files, checked against its registered sha256."""
        return verified(self.path, filename, self.ref)

    def load_spec(self) -> dict[str, Any]:
        """The resolved spec the model was built from (rebuild the network from it)."""
        return dict(read_json(self.file(SPEC_FILE)))

    def load_preprocess(self) -> dict[str, Any]:
        """The fitted preprocessing pipeline state, as saved at registration."""
        return dict(read_json(self.file(PREPROCESS_FILE)))

    def load_summary(self) -> dict[str, Any] | None:
        """The layer and parameter summary written at registration; None for a version registered before it."""
        path = self.file(SUMMARY_FILE)
        return dict(read_json(path)) if path.is_file() else None

    def load_state_dict(self, device: str = "cpu") -> dict[str, torch.Tensor]:
        """The weights, read with safetensors (no pickle, so no code runs on load)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        weights = self.file(WEIGHTS_FILE)
        if not weights.is_file():
            raise StoreError(f"Weights of model {self.ref} are missing: {weights}", field="weights")
        try:
            return load_file(str(weights), device=device)
        except (SafetensorError, OSError) as exc:
            raise StoreError(
                f"Weights of model {self.ref} are unreadable ({weights}): {exc}", field="weights"
            ) from None

    def read_file(self, filename: str) -> bytes:
        """An extra file given at registration (``extra_files``), by its plain name."""
        if "/" in filename or "\\" in filename or filename.startswith("."):
            raise StoreError(
                f"Invalid file name {filename!r}: expected a plain name such as notes.md", field="filename"
            )
        target = self.file(filename)
        if not target.is_file():
            present = sorted(p.name for p in self.path.iterdir() if p.is_file())
            raise NotFoundError(
                f"Model {self.ref} has no file {filename!r}; it has {', '.join(present)}", field="filename"
            )
        return target.read_bytes()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the CLI and the server."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "run_id": self.run_id,
            "created_at": iso(self.created_at),
            "metrics": self.metrics,
            "lineage": self.lineage,
            "kind": self.kind,
            "parent": self.parent,
            "aliases": list(self.aliases),
            "task": self.task,
            "description": self.description,
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True)
class Alias:
    """``NAME@ALIAS`` → ``NAME:version``; ``previous`` is where ``set_alias`` moved it from (None: it is new)."""

    name: str
    alias: str
    version: int
    updated_at: datetime
    previous: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    @property
    def target(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the CLI and the server."""
        return {
            "name": self.name,
            "alias": self.alias,
            "ref": self.ref,
            "version": self.version,
            "model": self.target,
            "previous": self.previous,
            "updated_at": iso(self.updated_at),
        }


def model_version(row: ModelVersionRow, path: Path, aliases: tuple[str, ...] = ()) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        run_id=row.run_id,
        created_at=row.created_at,
        metrics=json.loads(row.metrics_json or "{}"),
        lineage=json.loads(row.lineage_json or "{}"),
        task=row.task,
        description=row.description or "",
        path=path,
        size_bytes=row.size_bytes,
        aliases=aliases,
    )
