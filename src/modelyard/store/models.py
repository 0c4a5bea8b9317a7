"""The model registry: named, versioned models, each a folder plus a database row.

``register`` writes every file into a temporary folder first, then, holding the
database write lock, picks the next version, publishes the folder as ``models/<name>/<version>``
in the artifact store (``store/artifacts.py``: a rename in the home's folder, or an upload to an
S3 bucket whose ``checksums.json`` goes last) and commits the row. Any failure unpublishes the
half-written version and rolls the row back, so a version either exists completely or not at all
(BentoML ``_internal/store.py`` does the same). Version numbers are never reused, even after ``delete``.
"""

from __future__ import annotations

import builtins
import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from modelyard._files import dumps_json, follow_umask, user_folder
from modelyard.errors import InputError, NotFoundError, StoreError
from modelyard.store import paths
from modelyard.store.artifacts import ArtifactStore, Staged, artifact_store
from modelyard.store.checksums import CHECKSUMS_FILE, write_checksums
from modelyard.store.db import Database, database
from modelyard.store.gc import TMP_PREFIX, InUse, folder_size
from modelyard.store.records import (
    LINEAGE_FILE,
    METRICS_FILE,
    PREPROCESS_FILE,
    SPEC_FILE,
    SUMMARY_FILE,
    WEIGHTS_FILE,
    Alias,
    ModelVersion,
    model_version,
)
from modelyard.store.refs import check_alias, check_name, parse_explicit, unknown_name_message
from modelyard.store.resolve import alias_rows, aliases_by_version, resolve, resolve_with_rule
from modelyard.store.tables import MetaRow, ModelAliasRow, ModelVersionRow
from modelyard.store.timestamps import utcnow

if TYPE_CHECKING:
    import torch

__all__ = ["ModelStore", "ModelVersion", "InUse"]

logger = logging.getLogger(__name__)

_RESERVED = {SPEC_FILE, WEIGHTS_FILE, PREPROCESS_FILE, METRICS_FILE, LINEAGE_FILE, SUMMARY_FILE, CHECKSUMS_FILE}
_EXTRA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Formats that unpickle (and so run code) when loaded: refused by name and by content.
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib")
_CLASSIFICATION_LOSSES = {"cross_entropy", "binary_cross_entropy"}  # as modelyard.spec
_ATTEMPTS = 5


def _looks_pickled(data: bytes) -> bool:
    """Pickle protocol 2-5 starts with PROTO (0x80) + version; torch.save is a zip with data.pkl."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    return data[:4] == b"PK\x03\x04" and b".pkl" in data[:65536]


def _extra_files(extra: Mapping[str, bytes] | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, data in (extra or {}).items():
        field = f"extra_files[{name!r}]"
        if not isinstance(name, str) or not _EXTRA_NAME.match(name) or name in _RESERVED:
            raise StoreError(
                f"Invalid file name for `{field}`: expected a plain name such as notes.md, "
                f"not one of {', '.join(sorted(_RESERVED))}, received {name!r}",
                field="extra_files",
            )
        if not isinstance(data, bytes):
            raise StoreError(
                f"Invalid value for `{field}`: expected bytes, received {type(data).__name__}", field="extra_files"
            )
        if name.lower().endswith(_PICKLE_SUFFIXES) or _looks_pickled(data):
            raise StoreError(
                f"Refused `{field}`: pickle data is not stored (it runs code when loaded); use JSON or safetensors",
                field="extra_files",
            )
        out[name] = data
    return out


def _cpu_tensors(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that share no memory (safetensors refuses shared)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise StoreError(
                f"Invalid value for `state_dict[{key!r}]`: expected str keys and torch.Tensor values, "
                f"received {type(value).__name__}",
                field="state_dict",
            )
        tensor = value.detach().to("cpu")
        ptr = tensor.untyped_storage().data_ptr()
        if not tensor.is_contiguous() or (ptr in storages and tensor.numel() > 0):
            tensor = tensor.clone(memory_format=torch.contiguous_format)  # tied weights: store a copy
        else:
            storages.add(ptr)
        out[key] = tensor
    return out


def _infer_task(spec: Mapping[str, Any]) -> str | None:
    loss = (spec.get("train") or {}).get("loss") if isinstance(spec.get("train"), Mapping) else None
    kind = loss.get("type") if isinstance(loss, Mapping) else loss
    if not isinstance(kind, str):
        return None
    return "classification" if kind in _CLASSIFICATION_LOSSES else "regression"


class ModelStore:
    """Registered models of the store at ``home`` (default ``$MODELYARD_HOME``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = paths.home(home)

    @property
    def db(self) -> Database:
        return database(self.home)

    @property
    def artifacts(self) -> ArtifactStore:
        """Where the version files are: the home's folder, or ``MODELYARD_ARTIFACTS_URL``'s bucket."""
        return artifact_store(self.home)

    def register(
        self,
        name: str,
        *,
        state_dict: Mapping[str, torch.Tensor],
        spec: Mapping[str, Any],
        preprocess: Mapping[str, Any],
        metrics: Mapping[str, Any],
        run_id: str | None = None,
        lineage: Mapping[str, Any] | None = None,
        task: str | None = None,
        description: str | None = None,
        extra_files: Mapping[str, bytes] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Store a new version of ``name`` (1 for a new name) and return it.

        ``summary`` is ``modelyard.version_summary.summarize`` of the network (what `models show`
        prints without loading it); every registration path passes it.

        Idempotent per ``run_id``: if that run already registered a version (a retried
        job, a resume after a crash between registration and finishing the run), that
        version is returned and nothing new is written.
        """
        from safetensors.torch import save_file

        from modelyard.store.pipelines import PipelineStore

        check_name(name)
        if PipelineStore(self.home).exists(name):  # one name, one kind: `serve NAME` must know which
            raise InputError(
                f"Invalid model name {name!r}: a pipeline of that name is registered (a name is a model or a "
                "pipeline); expected another name",
                field="name",
            )
        spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
        files = {  # everything validated and serialized before the disk is touched
            SPEC_FILE: dumps_json(spec, "spec").encode(),
            PREPROCESS_FILE: dumps_json(dict(preprocess), "preprocess").encode(),
            METRICS_FILE: dumps_json(dict(metrics), "metrics").encode(),
            LINEAGE_FILE: dumps_json(dict(lineage or {}), "lineage").encode(),
            **({SUMMARY_FILE: dumps_json(dict(summary), "summary").encode()} if summary is not None else {}),
            **_extra_files(extra_files),
        }
        tensors = _cpu_tensors(state_dict)
        row = ModelVersionRow(
            name=name,
            run_id=run_id,
            metrics_json=files[METRICS_FILE].decode(),
            lineage_json=files[LINEAGE_FILE].decode(),
            task=task or _infer_task(spec),
            description=description if description is not None else str(spec.get("description") or ""),
        )
        artifacts = self.artifacts
        parent = paths.ensure_dir(artifacts.local_path(paths.model_key(name)))  # where publish renames it to
        tmp = user_folder(parent, TMP_PREFIX)
        try:
            for filename, data in files.items():
                (tmp / filename).write_bytes(data)
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
            follow_umask(tmp / WEIGHTS_FILE)
            write_checksums(tmp)
            row.size_bytes = folder_size(tmp)
            with artifacts.stage(tmp) as staged:  # S3: uploaded under a temporary key, before the lock
                return self._publish(row, staged, artifacts)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed

    def _publish(self, row: ModelVersionRow, staged: Staged, artifacts: ArtifactStore) -> ModelVersion:
        """Under the write lock: next version, publish the staged files as it, commit the row."""
        hwm_key = f"last_version:{row.name}"
        for _attempt in range(_ATTEMPTS):
            target: Path | None = None
            published = committed = False
            try:
                with self.db.session(write=True) as session:
                    if row.run_id is not None:  # a retried run registers at most one version
                        existing = session.scalars(
                            select(ModelVersionRow)
                            .where(ModelVersionRow.run_id == row.run_id)
                            .order_by(ModelVersionRow.version)
                            .limit(1)
                        ).first()
                        if existing is not None:
                            logger.info(
                                "run %s already registered %s:%d; not registering again",
                                row.run_id,
                                existing.name,
                                existing.version,
                            )
                            return self._version(existing)
                    last = session.scalar(
                        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.name == row.name)
                    )
                    hwm = session.get(MetaRow, hwm_key)
                    version = max(last or 0, int(hwm.value) if hwm else 0) + 1
                    key = paths.model_key(row.name, version)
                    # A version without a row: the database was replaced by an older backup or
                    # emptied, or a registration died between publish and commit. Its files may
                    # be the only copy of a version, so they are never overwritten.
                    if artifacts.exists(key):
                        where = artifacts.location(key)
                        raise StoreError(
                            f"Refused to register {row.name}:{version}: its {where} already exists "
                            f"but the database has no row for it (the database was restored from an older "
                            f"backup or emptied, or a registration crashed); restore the newest backup of "
                            f"{self.db.where}, or move {where.split(' ', 1)[1]} out of the store if it is not wanted",
                            field="name",
                        )
                    published = True
                    target = staged.publish(key)
                    row.version, row.created_at = version, utcnow()
                    session.add(row)
                    session.merge(MetaRow(key=hwm_key, value=str(version)))
                    session.commit()
                    committed = True
            except BaseException as exc:
                if published and not committed:
                    staged.unpublish()  # register() removes tmp
                if isinstance(exc, IntegrityError) and not committed:  # another writer took it: retry
                    logger.debug("version clash registering %s, retrying", row.name)
                    continue
                raise
            return model_version(row, target)
        raise StoreError(
            f"Could not register model {row.name!r}: version clash persisted after {_ATTEMPTS} attempts", field="name"
        )

    def get(self, ref: str) -> ModelVersion:
        """``NAME:N``, ``NAME@ALIAS``, ``NAME:latest`` or the bare ``NAME`` (rules: ``modelyard.store.resolve``)."""
        return self.resolve(ref)[0]

    def resolve(self, ref: str) -> tuple[ModelVersion, str]:
        """The version ``ref`` names and the rule that chose it (``alias production``, ``newest trained version``)."""
        with self.db.session() as session:
            row, rule = resolve_with_rule(session, ref)
            aliases = aliases_by_version(session, row.name).get((row.name, row.version), ())
        return self._version(row, aliases=aliases), rule

    def set_alias(self, ref: str, alias: str) -> Alias:
        """Point ``NAME@alias`` at the version ``ref`` names (``NAME:N``, ``NAME:latest`` or another alias).

        The alias is created or moved; the answer says from which version (``previous``).
        """
        check_alias(alias)
        parse_explicit(ref, "alias set", alias=True)
        with self.db.session(write=True) as session:
            row = resolve(session, ref)
            found = session.get(ModelAliasRow, (row.name, alias))
            previous = found.version if found is not None else None
            now = utcnow()
            session.merge(ModelAliasRow(name=row.name, alias=alias, version=row.version, updated_at=now))
        return Alias(row.name, alias, row.version, now, previous)

    def delete_alias(self, name: str, alias: str) -> Alias:
        """Remove ``NAME@alias``; returns what it was (its version)."""
        check_name(name)
        check_alias(alias)
        with self.db.session(write=True) as session:
            found = session.get(ModelAliasRow, (name, alias))
            if found is None:
                resolve(session, name)  # an unknown model: say so, with the closest name
                known = ", ".join(f"{a.name}@{a.alias}" for a in alias_rows(session, name)) or "none"
                raise NotFoundError(f"Model {name!r} has no alias {alias!r} (its aliases: {known})", field="alias")
            gone = Alias(found.name, found.alias, found.version, found.updated_at)
            session.delete(found)
        return gone

    def aliases(self, name: str | None = None) -> builtins.list[Alias]:
        """Every alias (of ``name`` if given, an unknown name is NotFoundError), by name then alias."""
        if name is not None and name not in self.names():
            raise NotFoundError(unknown_name_message(name, self.names()), field="name")
        with self.db.session() as session:
            return [Alias(a.name, a.alias, a.version, a.updated_at) for a in alias_rows(session, name)]

    def derived(self, ref: str) -> builtins.list[ModelVersion]:
        """The versions whose lineage names ``ref`` (an explicit ``NAME:N``) as their parent, oldest first."""
        return [v for v in self.list() if v.parent == ref]

    def family(self, version: ModelVersion) -> dict[str, Any]:
        """``kind``, ``parent``, ``parent_deleted`` and ``derived`` (``[{"model", "kind"}]``) of ``version``."""
        deleted = False
        if version.parent is not None:
            try:
                self.get(version.parent)
            except (NotFoundError, InputError):  # deleted, or a parent ref this release cannot read
                deleted = True
        return {
            "kind": version.kind,
            "parent": version.parent,
            "parent_deleted": deleted,
            "derived": [{"model": d.ref, "kind": d.kind} for d in self.derived(version.ref)],
        }

    def for_run(self, run_id: str) -> ModelVersion | None:
        """The version registered by run ``run_id``, if any."""
        with self.db.session() as session:
            row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.run_id == run_id).limit(1)).first()
        return None if row is None else self._version(row)

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        """All versions of ``name``, oldest first; unknown name → NotFoundError."""
        found = self.list(name)
        if not found:
            raise NotFoundError(unknown_name_message(name, self.names()), field="name")
        return found

    def names(self) -> builtins.list[str]:
        with self.db.session() as session:
            return builtins.list(
                session.scalars(select(ModelVersionRow.name).distinct().order_by(ModelVersionRow.name))
            )

    def _pipelines_of(self, ref: str) -> builtins.list[str]:
        """``["pipeline assistant:2", ...]``: the registered pipelines whose intent stage pins ``ref``."""
        from modelyard.store.pipelines import PipelineStore

        return [
            f"pipeline {p.ref}"
            for p in PipelineStore(self.home).list()
            if p.spec.get("stages", {}).get("intent", {}).get("model") == ref
        ]

    def delete(self, ref: str, *, force: bool = False, in_use: InUse | None = None) -> ModelVersion:
        """Remove one version (row, aliases and folder). Needs an explicit ``NAME:N`` (or ``NAME:latest``).

        Refused while an alias points to it unless ``force`` (the aliases go with it), and
        whenever ``in_use(session, ref)`` names a user of it: the control plane and the CLI
        pass the deployments there (``modelyard.server.registry.in_use``), checked in the same
        write transaction as the delete; and while a registered pipeline pins it as its intent model. Versions derived from it stay as they are: each holds
        its own spec, weights and preprocessing, and its lineage keeps naming the deleted
        parent (a record of where it came from, as MLflow keeps a deleted run's id).
        """
        parse_explicit(ref, "delete")
        with self.db.session(write=True) as session:
            row = resolve(session, ref)
            pointers = [a for a in alias_rows(session, row.name) if a.version == row.version]
            deleted = self._version(row, check=False, aliases=tuple(a.alias for a in pointers))
            users = [*(in_use(session, deleted.ref) if in_use is not None else []), *self._pipelines_of(deleted.ref)]
            if users:
                raise StoreError(
                    f"Refused to delete {deleted.ref}: it is served by {', '.join(users)}; delete or redeploy that first",
                    field="ref",
                )
            if pointers and not force:
                names = ", ".join(f"{a.name}@{a.alias}" for a in pointers)
                raise StoreError(
                    f"Refused to delete {deleted.ref}: {names} points to it; move the alias "
                    f"(`modelyard models alias set`), or pass --force to delete the version and its aliases",
                    field="ref",
                )
            for pointer in pointers:
                session.delete(pointer)
            session.delete(row)
            session.flush()
            with self.artifacts.removing(paths.model_key(deleted.name, deleted.version)):
                session.commit()
        return deleted

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Every registered version (of ``name`` if given), by name then version."""
        query = select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.version)
        if name is not None:
            query = query.where(ModelVersionRow.name == name)
        with self.db.session() as session:
            rows = builtins.list(session.scalars(query))
            aliases = aliases_by_version(session, name)
        return [self._version(row, check=False, aliases=aliases.get((row.name, row.version), ())) for row in rows]

    def _version(self, row: ModelVersionRow, *, check: bool = True, aliases: tuple[str, ...] = ()) -> ModelVersion:
        key = paths.model_key(row.name, row.version)
        artifacts = self.artifacts
        return model_version(row, artifacts.folder(key) if check else artifacts.local_path(key), aliases)
