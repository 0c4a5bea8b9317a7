"""Stored datasets: a table (Parquet) with its report and lineage, addressed as ``NAME:VERSION``.

``modelyard datasets upload`` (``store/upload.py``) and ``modelyard anonymize`` write one; a spec trains on it with ``data: {dataset: NAME:VERSION,
target: ...}`` (or ``{source: dataset, name: NAME:VERSION, ...}``) and the model version's lineage names it. A version is a folder::

    artifacts/datasets/<name>/<version>/data.parquet   the table
                                        report.json    rows, columns, schema (upload); counts, k achieved (anonymize)
                                        lineage.json   operation, source file(s) and sha256, steps; never a key
                                        checksums.json sha256 of each file, checked on read

Registration writes a temporary folder, then takes the database's write lock, picks the next
version (a high-water mark in the meta table: numbers are never reused) and publishes the folder
in the artifact store (``store/artifacts.py``: renamed into place, or uploaded to the
``MODELYARD_ARTIFACTS_URL`` bucket with its checksums.json last), so a dataset exists completely
or not at all, as model versions do. With a bucket, the versions are the bucket's and a read
downloads the version into the home's cache, checked against its checksums.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from modelyard._files import dumps_json, user_folder
from modelyard.errors import InputError, NotFoundError, StoreError
from modelyard.store import paths
from modelyard.store.artifacts import ArtifactStore, Staged, artifact_store
from modelyard.store.checksums import CHECKSUMS_FILE, verified, write_checksums
from modelyard.store.refs import NAME_PATTERN, check_name

__all__ = ["DatasetStore", "DatasetVersion", "DATA_FILE", "REPORT_FILE", "LINEAGE_FILE"]

DATA_FILE = "data.parquet"
REPORT_FILE = "report.json"
LINEAGE_FILE = "lineage.json"
_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_.-]{0,63})(?::(?P<version>[1-9][0-9]{0,8}|latest))?$")


@dataclass(frozen=True)
class DatasetVersion:
    """One stored version. Its report, lineage and sha256 are read file by file (a listing of a bucket
    downloads no table); ``path`` and ``data_path()`` fetch the whole version."""

    name: str
    version: int
    artifacts: ArtifactStore = field(repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def key(self) -> str:
        return paths.dataset_key(self.name, self.version)

    @cached_property
    def path(self) -> Path:
        """The version's local folder (with a bucket: downloaded into the cache and checked)."""
        return self.artifacts.folder(self.key)

    def _json(self, filename: str) -> Any:
        where = f"{self.artifacts.location(self.key)}/{filename}"
        data = self.artifacts.read_small(self.key, filename)
        if data is None:
            raise StoreError(f"Store file is missing: {where}", field=filename)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"Store file {where} is unreadable: {exc}", field=filename) from None

    @cached_property
    def report(self) -> dict[str, Any]:
        return self._json(REPORT_FILE)

    @cached_property
    def lineage(self) -> dict[str, Any]:
        return self._json(LINEAGE_FILE)

    @cached_property
    def sha256(self) -> str | None:
        """The recorded sha256 of the table (``checksums.json``): the content hash lineage names."""
        try:
            return self._json(CHECKSUMS_FILE)["sha256"].get(DATA_FILE)
        except (KeyError, AttributeError, TypeError, StoreError):
            return None

    def to_dict(self) -> dict[str, Any]:
        """What ``GET /v1/datasets/...`` and ``modelyard datasets show --json`` give."""
        report, lineage = self.report, self.lineage
        return {
            "dataset": self.ref,
            "name": self.name,
            "version": self.version,
            "rows": report.get("rows", report.get("rows_out")),
            "sha256": self.sha256,
            "schema": report.get("schema"),
            "operation": lineage.get("operation"),
            "created_at": lineage.get("created_at"),
            "report": report,
            "lineage": lineage,
        }

    def data_path(self) -> Path:
        """The table's file, checked against its recorded sha256."""
        return verified(self.path, DATA_FILE, f"dataset {self.ref}")


class DatasetStore:
    """Stored datasets of the store at ``home`` (default ``$MODELYARD_HOME``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = paths.home(home)

    @property
    def artifacts(self) -> ArtifactStore:
        """Where the dataset files are: the home's folder, or ``MODELYARD_ARTIFACTS_URL``'s bucket."""
        return artifact_store(self.home)

    def register(
        self,
        name: str,
        *,
        table: bytes | Callable[[Path], object],
        report: Mapping[str, Any],
        lineage: Mapping[str, Any],
    ) -> DatasetVersion:
        """Store the next version of ``name``: ``table`` is the Parquet file's bytes, or a function that
        writes it to the path it is given (a large table is then never held twice in memory)."""
        check_name(name)
        files = {
            REPORT_FILE: dumps_json(dict(report), "report").encode(),
            LINEAGE_FILE: dumps_json(dict(lineage), "lineage").encode(),
        }
        artifacts = self.artifacts
        parent = paths.ensure_dir(artifacts.local_path(paths.dataset_key(name)))  # where publish renames it to
        tmp = user_folder(parent, ".tmp-")
        try:
            if isinstance(table, bytes):
                (tmp / DATA_FILE).write_bytes(table)
            else:
                table(tmp / DATA_FILE)
            for filename, data in files.items():
                (tmp / filename).write_bytes(data)
            write_checksums(tmp)
            with artifacts.stage(tmp) as staged:  # S3: uploaded under a temporary key, before the lock
                return self._publish(name, staged)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed

    def _publish(self, name: str, staged: Staged) -> DatasetVersion:
        # Here, not at the top: listing and reading datasets needs no SQLAlchemy (tests/unit/cli/test_imports.py).
        from modelyard.store.db import database
        from modelyard.store.tables import MetaRow

        key = f"dataset_last_version:{name}"
        with database(self.home).session(write=True) as session:
            hwm = session.get(MetaRow, key)
            version = max(int(hwm.value) if hwm else 0, *self._versions(name), 0) + 1
            try:  # a publish that fails midway is undone too
                staged.publish(paths.dataset_key(name, version))
                session.merge(MetaRow(key=key, value=str(version)))
                session.commit()
            except BaseException:
                staged.unpublish()
                raise
        return DatasetVersion(name, version, self.artifacts)

    def _versions(self, name: str) -> list[int]:
        return self.artifacts.versions(paths.dataset_key(name))

    def names(self) -> list[str]:
        return self.artifacts.names("datasets")

    def _found(self, name: str, version: int) -> DatasetVersion:
        return DatasetVersion(name, version, self.artifacts)

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        """Every stored dataset version (of ``name`` if given), by name then version."""
        names = [name] if name is not None else self.names()
        return [self._found(n, v) for n in names for v in self._versions(n)]

    def get(self, ref: str, field: str = "ref") -> DatasetVersion:
        """``NAME:N``, ``NAME:latest`` or the bare ``NAME`` (its newest version)."""
        match = _REF.match(ref.strip()) if isinstance(ref, str) else None
        if match is None:
            raise InputError(
                f"Invalid value for `{field}`: expected a dataset reference NAME or NAME:VERSION such as "
                f"people-anon:1 (NAME matching {NAME_PATTERN}), received {ref!r}",
                field=field,
            )
        name, wanted = match["name"], match["version"]
        versions = self._versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(
                f"Dataset {name!r} not found for `{field}` (stored datasets: {known}); `modelyard datasets upload` or `modelyard anonymize` stores one",
                field=field,
            )
        version = versions[-1] if wanted in (None, "latest") else int(wanted)
        if version not in versions:
            raise NotFoundError(
                f"Dataset {name}:{version} not found for `{field}` (its versions: {', '.join(map(str, versions))})",
                field=field,
            )
        found = self._found(name, version)
        if not (found.path / DATA_FILE).is_file():  # fetches the version: get() is what a reader asks
            raise StoreError(f"Dataset {found.ref} is damaged: {found.path / DATA_FILE} is missing", field=field)
        return found
