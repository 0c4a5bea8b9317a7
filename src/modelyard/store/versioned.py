"""Numbered folders in the artifact store addressed as ``NAME:VERSION``: what stored datasets
(``store/datasets.py``) and registered pipelines (``store/pipelines.py``) share.

A kind's store subclasses ``VersionedStore`` with its word (``dataset``), its key function
(``store/paths.py``: ``datasets/<name>/<version>``), the not-found message's hint and its meta-table
key prefix; its version class subclasses ``Version``. Registration writes a temporary folder and
its checksums.json, stages it in the artifact store (``store/artifacts.py``: S3 uploads it before
the lock), then takes the database's write lock, picks the next version (a high-water mark in the
meta table, so numbers are never reused) and publishes the folder: a version exists completely or
not at all. Model versions (``store/models.py``) have rows, aliases and their own resolution rules
(``store/resolve.py``), so they do not go through here.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from modelyard._files import user_folder
from modelyard.errors import InputError, NotFoundError
from modelyard.store import paths
from modelyard.store.artifacts import ArtifactStore, Staged, artifact_store
from modelyard.store.checksums import write_checksums
from modelyard.store.refs import NAME_PATTERN

__all__ = ["REF", "Version", "VersionedStore"]

# NAME, NAME:N or NAME:latest (no aliases: only model versions have them).
REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_.-]{0,63})(?::(?P<version>[1-9][0-9]{0,8}|latest))?$")


@dataclass(frozen=True)
class Version:
    """One stored version; a subclass sets ``_key_of``, its kind's key function from ``store/paths.py``."""

    name: str
    version: int
    artifacts: ArtifactStore = field(repr=False, compare=False)
    _key_of: ClassVar[Callable[..., str]]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def key(self) -> str:
        return self._key_of(self.name, self.version)

    @cached_property
    def path(self) -> Path:
        """The version's local folder (with a bucket: downloaded into the cache and checked)."""
        return self.artifacts.folder(self.key)


V = TypeVar("V", bound=Version)


class VersionedStore(Generic[V]):
    """The versions of one kind in the store at ``home`` (default ``$MODELYARD_HOME``).

    A subclass sets ``_word`` (``dataset``: the messages' word and, plural, the artifact folder),
    ``_version_type``, ``_example`` (a reference in the invalid-reference message), ``_listed`` and
    ``_hint`` (the not-found message: ``(<listed>: NAMES); <hint>``) and ``_meta_prefix`` (the
    high-water mark's key in the meta table, ``<meta_prefix><name>``).
    """

    _word: str
    _version_type: type[V]
    _example: str
    _listed: str
    _hint: str
    _meta_prefix: str

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = paths.home(home)

    @property
    def artifacts(self) -> ArtifactStore:
        """Where the version files are: the home's folder, or ``MODELYARD_ARTIFACTS_URL``'s bucket."""
        return artifact_store(self.home)

    def _register(self, name: str, write: Callable[[Path], object]) -> V:
        """The next version of ``name``: ``write`` fills the temporary folder it is given, then it is published."""
        artifacts = self.artifacts
        parent = paths.ensure_dir(artifacts.local_path(self._version_type._key_of(name)))  # where publish renames it to
        tmp = user_folder(parent, ".tmp-")
        try:
            write(tmp)
            write_checksums(tmp)
            with artifacts.stage(tmp) as staged:  # S3: uploaded under a temporary key, before the lock
                return self._publish(name, staged)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed

    def _publish(self, name: str, staged: Staged) -> V:
        # Here, not at the top: listing and reading versions needs no SQLAlchemy (tests/unit/cli/test_imports.py).
        from modelyard.store.db import database
        from modelyard.store.tables import MetaRow

        key = f"{self._meta_prefix}{name}"
        with database(self.home).session(write=True) as session:
            hwm = session.get(MetaRow, key)
            version = max(int(hwm.value) if hwm else 0, *self._versions(name), 0) + 1
            try:  # a publish that fails midway is undone too
                staged.publish(self._version_type._key_of(name, version))
                session.merge(MetaRow(key=key, value=str(version)))
                session.commit()
            except BaseException:
                staged.unpublish()
                raise
        return self._found(name, version)

    def _versions(self, name: str) -> list[int]:
        return self.artifacts.versions(self._version_type._key_of(name))

    def names(self) -> list[str]:
        return self.artifacts.names(f"{self._word}s")

    def _found(self, name: str, version: int) -> V:
        return self._version_type(name, version, self.artifacts)

    def list(self, name: str | None = None) -> list[V]:
        """Every stored version (of ``name`` if given), by name then version."""
        names = [name] if name is not None else self.names()
        return [self._found(n, v) for n in names for v in self._versions(n)]

    def get(self, ref: str, field: str = "ref") -> V:
        """``NAME:N``, ``NAME:latest`` or the bare ``NAME`` (its newest version)."""
        match = REF.match(ref.strip()) if isinstance(ref, str) else None
        if match is None:
            raise InputError(
                f"Invalid value for `{field}`: expected a {self._word} reference NAME or NAME:VERSION such as "
                f"{self._example} (NAME matching {NAME_PATTERN}), received {ref!r}",
                field=field,
            )
        name, wanted = match["name"], match["version"]
        versions = self._versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(
                f"{self._word.capitalize()} {name!r} not found for `{field}` ({self._listed}: {known}); {self._hint}",
                field=field,
            )
        version = versions[-1] if wanted in (None, "latest") else int(wanted)
        if version not in versions:
            raise NotFoundError(
                f"{self._word.capitalize()} {name}:{version} not found for `{field}` "
                f"(its versions: {', '.join(map(str, versions))})",
                field=field,
            )
        return self._found(name, version)
