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
or not at all, as model versions do; ``store/versioned.py`` holds these steps and the ``NAME:VERSION``
lookup, shared with registered pipelines. With a bucket, the versions are the bucket's and a read
downloads the version into the home's cache, checked against its checksums.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from modelyard._files import dumps_json
from modelyard.errors import StoreError
from modelyard.store import paths
from modelyard.store.checksums import CHECKSUMS_FILE, verified
from modelyard.store.refs import check_name
from modelyard.store.versioned import Version, VersionedStore

__all__ = ["DatasetStore", "DatasetVersion", "DATA_FILE", "REPORT_FILE", "LINEAGE_FILE"]

DATA_FILE = "data.parquet"
REPORT_FILE = "report.json"
LINEAGE_FILE = "lineage.json"


@dataclass(frozen=True)
class DatasetVersion(Version):
    """One stored version. Its report, lineage and sha256 are read file by file (a listing of a bucket
    downloads no table); ``path`` and ``data_path()`` fetch the whole version."""

    _key_of = staticmethod(paths.dataset_key)

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


class DatasetStore(VersionedStore[DatasetVersion]):
    """Stored datasets of the store at ``home`` (default ``$MODELYARD_HOME``)."""

    _word = "dataset"
    _version_type = DatasetVersion
    _example = "people-anon:1"
    _listed = "stored datasets"
    _hint = "`modelyard datasets upload` or `modelyard anonymize` stores one"
    _meta_prefix = "dataset_last_version:"

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

        def write(tmp: Path) -> None:
            if isinstance(table, bytes):
                (tmp / DATA_FILE).write_bytes(table)
            else:
                table(tmp / DATA_FILE)
            for filename, data in files.items():
                (tmp / filename).write_bytes(data)

        return self._register(name, write)

    def get(self, ref: str, field: str = "ref") -> DatasetVersion:
        """``NAME:N``, ``NAME:latest`` or the bare ``NAME`` (its newest version)."""
        found = super().get(ref, field)
        if not (found.path / DATA_FILE).is_file():  # fetches the version: get() is what a reader asks
            raise StoreError(f"Dataset {found.ref} is damaged: {found.path / DATA_FILE} is missing", field=field)
        return found
