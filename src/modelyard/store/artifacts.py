"""Where version folders live: the home's ``artifacts/`` folder (default) or an S3-compatible bucket.

``MODELYARD_ARTIFACTS_URL`` picks it: empty for the local folder, ``s3://BUCKET/PREFIX`` for a bucket
(``store/s3.py``; endpoint and credentials from boto3's own settings: ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``~/.aws/config``). Several
servers that share one PostgreSQL database (``MODELYARD_DATABASE_URL``) share their versions this way.

A version is addressed by its key, ``models/<name>/<version>`` or ``datasets/<name>/<version>``. Both kinds build the version in a
local temporary folder (with its ``checksums.json``) and publish it in three steps that keep a
version whole or absent:

1. ``stage(tmp)``, before the database's write lock: nothing (local), or every file uploaded under a
   temporary key prefix (S3).
2. ``staged.publish(key)``, under the lock, before the row commits: rename the folder into place, or
   copy the staged objects to the key and put ``checksums.json`` last, the publish marker (a reader
   treats a key without it as absent). A key that is already a version is refused.
3. ``staged.unpublish()`` if the row does not commit; leaving the ``stage`` block removes what the
   staging left (the temporary keys).

Readers ask ``folder(key)``: the folder itself, or a copy in the home's ``cache/artifacts/``
downloaded and checked file by file against the bucket's ``checksums.json``; listings read the
small files they show with ``read_small(key, name)``, which fetches nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from modelyard.errors import StoreError
from modelyard.store import paths

__all__ = ["ENV_VAR", "ArtifactStore", "Staged", "LocalStore", "artifact_store", "artifacts_url", "version_ref"]

ENV_VAR = "MODELYARD_ARTIFACTS_URL"


class Staged(Protocol):
    """A version staged for publishing (``ArtifactStore.stage``)."""

    def publish(self, key: str) -> Path:
        """Make it the version at ``key`` (refused if one is there); its local folder."""
        ...

    def unpublish(self) -> None:
        """Undo ``publish`` (the row did not commit); the staged files are kept for ``stage`` to remove."""
        ...


class ArtifactStore(Protocol):
    """The version folders of one home (``LocalStore``) or of one bucket prefix (``s3.S3Store``)."""

    where: str  # what messages name: a folder or an s3:// URL

    def location(self, key: str) -> str:
        """``key`` in messages: ``folder /home/artifacts/models/m/1`` or ``version s3://bucket/p/models/m/1``."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` is a published version (for S3: its checksums.json is there)."""
        ...

    def stage(self, tmp: Path) -> AbstractContextManager[Staged]:
        """The built version folder ``tmp`` staged for ``publish``; leaving the block cleans up."""
        ...

    def folder(self, key: str) -> Path:
        """The version's local folder, checked (S3: fetched into the cache); StoreError if it is gone."""
        ...

    def local_path(self, key: str) -> Path:
        """Where ``folder`` puts the version, without checking or fetching (listings)."""
        ...

    def read_small(self, key: str, name: str) -> bytes | None:
        """One small file of the version (a report, its lineage, ``checksums.json``) without fetching the
        rest, None if the version has no such file (S3: checked against the bucket's ``checksums.json``)."""
        ...

    def versions(self, key: str) -> list[int]:
        """The published versions under ``key`` (``datasets/<name>``), ascending."""
        ...

    def names(self, kind: str) -> list[str]:
        """The names under ``kind`` (``datasets``) that have a published version, sorted."""
        ...

    def removing(self, key: str) -> AbstractContextManager[None]:
        """Around the commit of the row's removal: the version's files go if the block succeeds."""
        ...


def artifacts_url(value: str | None = None) -> str | None:
    """``value`` (default ``$MODELYARD_ARTIFACTS_URL``) checked: an ``s3://BUCKET[/PREFIX]`` URL, or None (local)."""
    raw = (os.environ.get(ENV_VAR, "") if value is None else value).strip()
    if not raw:
        return None
    if not raw.startswith("s3://") or not raw[len("s3://") :].split("/", 1)[0]:
        raise StoreError(
            f"Invalid value for `{ENV_VAR}`: expected an S3 URL like s3://BUCKET/PREFIX (or empty for the "
            f"store's home folder), received {raw!r}",
            field=ENV_VAR,
        )
    return raw.rstrip("/")


def artifact_store(home: Path) -> ArtifactStore:
    """The artifact store of ``home``: the one ``MODELYARD_ARTIFACTS_URL`` names (read on each call), or its folder."""
    url = artifacts_url()
    if url is None:
        return LocalStore(home)
    from modelyard.store.s3 import S3Store

    return S3Store.from_url(url, cache=paths.cache_root(home))


class _LocalStaged:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.tmp = root, tmp
        self.target: Path | None = None

    def publish(self, key: str) -> Path:
        target = self.root / key
        if target.exists():  # ModelStore checks first, under the lock, with the whole story
            raise StoreError(f"Refused to publish {version_ref(key)}: {target} already exists", field="name")
        os.rename(self.tmp, target)
        self.target = target
        return target

    def unpublish(self) -> None:
        if self.target is not None and self.target.exists() and not self.tmp.exists():
            os.rename(self.target, self.tmp)  # the caller removes tmp
        self.target = None


class LocalStore:
    """Version folders under ``<home>/artifacts/``: publish is one rename."""

    def __init__(self, home: Path) -> None:
        self.root = home / "artifacts"
        self.where = str(self.root)

    def location(self, key: str) -> str:
        return f"folder {self.root / key}"

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()

    @contextmanager
    def stage(self, tmp: Path) -> Iterator[Staged]:
        yield _LocalStaged(self.root, tmp)

    def folder(self, key: str) -> Path:
        found = self.root / key
        if not found.is_dir():
            raise StoreError(f"{version_ref(key)} is registered but its folder is missing: {found}", field="ref")
        return found

    def local_path(self, key: str) -> Path:
        return self.root / key

    def read_small(self, key: str, name: str) -> bytes | None:
        try:
            return (self.root / key / name).read_bytes()
        except FileNotFoundError:
            return None

    def versions(self, key: str) -> list[int]:
        folder = self.root / key
        return (
            sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) if folder.is_dir() else []
        )

    def names(self, kind: str) -> list[str]:
        root = self.root / kind
        return (
            sorted(p.name for p in root.iterdir() if p.is_dir() and self.versions(f"{kind}/{p.name}"))
            if root.is_dir()
            else []
        )

    def removing(self, key: str) -> AbstractContextManager[None]:
        from modelyard.store.gc import trashed  # SQLAlchemy: not for reading datasets (store/datasets.py)

        return trashed(self.root / key)


def version_ref(key: str) -> str:
    """``models/web/3`` → ``Model web:3`` for messages."""
    kind, name, version = key.split("/")
    return f"{kind[:-1].capitalize()} {name}:{version}"
