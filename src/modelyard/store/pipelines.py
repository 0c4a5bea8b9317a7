"""Registered pipelines: a chain of stages (``modelyard.voice``) addressed as ``NAME:VERSION``.

A version is a folder, published like a dataset version (``store/datasets.py``: written into a
temporary folder, then, under the database's write lock, the next version number from a
high-water mark in the meta table, so numbers are never reused)::

    artifacts/pipelines/<name>/<version>/pipeline.json   the resolved spec: stage model refs pinned to NAME:N
                                         <stage files>    e.g. language_model.arpa (speech to text)
                                         checksums.json   sha256 of each file, checked on read

Nothing in a version is code: JSON and plain-text model files only.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
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

__all__ = ["PipelineStore", "PipelineVersion", "PIPELINE_FILE"]

PIPELINE_FILE = "pipeline.json"
_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_.-]{0,63})(?::(?P<version>[1-9][0-9]{0,8}|latest))?$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class PipelineVersion:
    """One stored pipeline version; ``spec`` is its resolved ``pipeline.json``."""

    name: str
    version: int
    artifacts: ArtifactStore = field(repr=False, compare=False)
    is_pipeline = True  # what a deployment tells it from a model version by

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def key(self) -> str:
        return paths.pipeline_key(self.name, self.version)

    @cached_property
    def path(self) -> Path:
        """The version's local folder (with a bucket: downloaded into the cache and checked)."""
        return self.artifacts.folder(self.key)

    @cached_property
    def spec(self) -> dict[str, Any]:
        data = verified(self.path, PIPELINE_FILE, f"pipeline {self.ref}").read_bytes()
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(
                f"Store file {self.path / PIPELINE_FILE} is unreadable: {exc}", field=PIPELINE_FILE
            ) from None

    def file(self, filename: str) -> Path:
        """A stage file of the version, checked against its recorded sha256."""
        return verified(self.path, filename, f"pipeline {self.ref}")


class PipelineStore:
    """Registered pipelines of the store at ``home`` (default ``$MODELYARD_HOME``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = paths.home(home)

    @property
    def artifacts(self) -> ArtifactStore:
        return artifact_store(self.home)

    def register(self, name: str, *, spec: Mapping[str, Any], files: Mapping[str, bytes]) -> PipelineVersion:
        """Store the next version of ``name``: ``spec`` as pipeline.json beside the stage ``files``."""
        check_name(name)
        for filename in files:
            if not _FILE_NAME.match(filename) or filename in (PIPELINE_FILE, CHECKSUMS_FILE):
                raise InputError(f"Invalid pipeline file name {filename!r}: expected a plain file name", field="files")
        data = {PIPELINE_FILE: dumps_json(dict(spec), "pipeline").encode(), **files}
        artifacts = self.artifacts
        parent = paths.ensure_dir(artifacts.local_path(paths.pipeline_key(name)))
        tmp = user_folder(parent, ".tmp-")
        try:
            for filename, content in data.items():
                (tmp / filename).write_bytes(content)
            write_checksums(tmp)
            with artifacts.stage(tmp) as staged:
                return self._publish(name, staged)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed

    def _publish(self, name: str, staged: Staged) -> PipelineVersion:
        from modelyard.store.db import database
        from modelyard.store.tables import MetaRow

        key = f"pipeline_last_version:{name}"
        with database(self.home).session(write=True) as session:
            hwm = session.get(MetaRow, key)
            version = max(int(hwm.value) if hwm else 0, *self._versions(name), 0) + 1
            try:
                staged.publish(paths.pipeline_key(name, version))
                session.merge(MetaRow(key=key, value=str(version)))
                session.commit()
            except BaseException:
                staged.unpublish()
                raise
        return PipelineVersion(name, version, self.artifacts)

    def _versions(self, name: str) -> list[int]:
        return self.artifacts.versions(paths.pipeline_key(name))

    def names(self) -> list[str]:
        return self.artifacts.names("pipelines")

    def list(self, name: str | None = None) -> list[PipelineVersion]:
        names = [name] if name is not None else self.names()
        return [PipelineVersion(n, v, self.artifacts) for n in names for v in self._versions(n)]

    def get(self, ref: str, field: str = "ref") -> PipelineVersion:
        """``NAME:N``, ``NAME:latest`` or the bare ``NAME`` (its newest version)."""
        match = _REF.match(ref.strip()) if isinstance(ref, str) else None
        if match is None:
            raise InputError(
                f"Invalid value for `{field}`: expected a pipeline reference NAME or NAME:VERSION such as "
                f"assistant:1 (NAME matching {NAME_PATTERN}), received {ref!r}",
                field=field,
            )
        name, wanted = match["name"], match["version"]
        versions = self._versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(
                f"Pipeline {name!r} not found for `{field}` (registered pipelines: {known}); "
                "`modelyard pipelines register SPEC --name NAME` registers one",
                field=field,
            )
        version = versions[-1] if wanted in (None, "latest") else int(wanted)
        if version not in versions:
            raise NotFoundError(
                f"Pipeline {name}:{version} not found for `{field}` (its versions: {', '.join(map(str, versions))})",
                field=field,
            )
        return PipelineVersion(name, version, self.artifacts)

    def exists(self, name: str) -> bool:
        return bool(self._versions(name)) if _REF.match(name) else False
