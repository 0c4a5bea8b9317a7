"""Registered pipelines: a chain of stages (``modelyard.voice``) addressed as ``NAME:VERSION``.

A version is a folder, published like a dataset version through ``store/versioned.py`` (written
into a temporary folder, then, under the database's write lock, the next version number from a
high-water mark in the meta table, so numbers are never reused)::

    artifacts/pipelines/<name>/<version>/pipeline.json   the resolved spec: stage model refs pinned to NAME:N
                                         <stage files>    e.g. language_model.arpa (speech to text)
                                         checksums.json   sha256 of each file, checked on read

Nothing in a version is code: JSON and plain-text model files only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from modelyard._files import dumps_json
from modelyard.errors import InputError, StoreError
from modelyard.store import paths
from modelyard.store.checksums import CHECKSUMS_FILE, verified
from modelyard.store.refs import check_name
from modelyard.store.versioned import REF, Version, VersionedStore

__all__ = ["PipelineStore", "PipelineVersion", "PIPELINE_FILE"]

PIPELINE_FILE = "pipeline.json"
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class PipelineVersion(Version):
    """One stored pipeline version; ``spec`` is its resolved ``pipeline.json``."""

    _key_of = staticmethod(paths.pipeline_key)
    is_pipeline = True  # what a deployment tells it from a model version by

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


class PipelineStore(VersionedStore[PipelineVersion]):
    """Registered pipelines of the store at ``home`` (default ``$MODELYARD_HOME``)."""

    _word = "pipeline"
    _version_type = PipelineVersion
    _example = "assistant:1"
    _listed = "registered pipelines"
    _hint = "`modelyard pipelines register SPEC --name NAME` registers one"
    _meta_prefix = "pipeline_last_version:"

    def register(self, name: str, *, spec: Mapping[str, Any], files: Mapping[str, bytes]) -> PipelineVersion:
        """Store the next version of ``name``: ``spec`` as pipeline.json beside the stage ``files``."""
        check_name(name)
        from modelyard.store.models import ModelStore

        if ModelStore(self.home).list(name=name):  # one name, one kind: `serve NAME` must know which
            raise InputError(
                f"Invalid pipeline name {name!r}: a model of that name is registered (a name is a model or a "
                "pipeline); expected another name",
                field="name",
            )
        for filename in files:
            if not _FILE_NAME.match(filename) or filename in (PIPELINE_FILE, CHECKSUMS_FILE):
                raise InputError(f"Invalid pipeline file name {filename!r}: expected a plain file name", field="files")
        data = {PIPELINE_FILE: dumps_json(dict(spec), "pipeline").encode(), **files}

        def write(tmp: Path) -> None:
            for filename, content in data.items():
                (tmp / filename).write_bytes(content)

        return self._register(name, write)

    def exists(self, name: str) -> bool:
        return bool(self._versions(name)) if REF.match(name) else False
