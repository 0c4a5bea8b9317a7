"""The artifact store on an S3-compatible bucket (boto3; extra ``modelyard[s3]``): ``s3://BUCKET/PREFIX``.

Objects::

    PREFIX/models/<name>/<version>/<file>           a published version's files
    PREFIX/models/<name>/<version>/checksums.json   written last: the version exists once it is there
    PREFIX/datasets/<name>/<version>/<file>         a stored dataset, the same way
    PREFIX/.tmp/<token>/<file>                      a registration's upload, removed when it ends

A registration uploads every file under ``.tmp/<token>/`` before it takes the database's write
lock; under the lock it removes any object left under the version's key by a registration that
died there (no ``checksums.json``: not a version), copies the staged objects in place inside the
bucket, puts ``checksums.json``, and then the row commits; if the row does not, the version's
objects are deleted, the marker first. A reader gets the marker and, unless the home's cache
already holds that same marker, downloads each file it lists into ``<home>/cache/artifacts/``
and checks its sha256 before the folder is used; ``ModelVersion.file`` checks again on each read.
The endpoint, credentials and region are boto3's own settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``~/.aws/config``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelyard._files import user_folder
from modelyard.errors import StoreError, optional_dependency
from modelyard.store.artifacts import version_ref
from modelyard.store.checksums import CHECKSUMS_FILE, sha256_file
from modelyard.store.gc import TMP_PREFIX, TRASH_PREFIX

__all__ = ["S3Store"]

logger = logging.getLogger(__name__)

# A file name a bucket's checksums.json may list: plain, as a version's files are (records.py, models.py).
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CLIENTS: dict[tuple[int, str | None], Any] = {}
_LOCK = threading.Lock()


def _client() -> Any:
    """One boto3 S3 client per process and endpoint (clients are thread-safe, and slow to make)."""
    with optional_dependency("s3", "The S3 artifact store (MODELYARD_ARTIFACTS_URL=s3://...)"):
        import boto3
    key = (os.getpid(), os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = boto3.session.Session().client("s3")
    return client


class _S3Staged:
    def __init__(self, store: S3Store, tmp: Path, token: str) -> None:
        self.store, self.tmp, self.token = store, tmp, token
        self.files = sorted(p.name for p in tmp.iterdir() if p.is_file() and p.name != CHECKSUMS_FILE)
        self.key: str | None = None

    def publish(self, key: str) -> Path:
        store = self.store
        if store.exists(key):  # ModelStore checks first, under the lock, with the whole story
            raise StoreError(f"Refused to publish {key}: {store.url}/{key} already exists", field="name")
        self.key = key
        store._delete_prefix(key)  # what a registration that died before its marker left: not a version
        for name in self.files:
            store._copy(store._object(f".tmp/{self.token}", name), store._object(key, name))
        marker = (self.tmp / CHECKSUMS_FILE).read_bytes()
        with store._calls(f"publish {key}"):
            store.client.put_object(Bucket=store.bucket, Key=store._object(key, CHECKSUMS_FILE), Body=marker)
        # The built folder becomes this home's cached copy: no download of what was just uploaded.
        cached = store.local_path(key)
        shutil.rmtree(cached, ignore_errors=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.tmp, cached)
        return cached

    def unpublish(self) -> None:
        if self.key is None:
            return
        cached = self.store.local_path(self.key)
        if cached.is_dir() and not self.tmp.exists():
            os.rename(cached, self.tmp)  # the caller may publish it again under another key
        try:
            self.store._delete_version(self.key)
        except StoreError as exc:  # keep the error that made the row fail; this one only leaves objects
            logger.warning("could not remove the unpublished %s: %s", self.key, exc)
        self.key = None


class S3Store:
    """Version files in ``s3://bucket/prefix``, read through a checked local cache."""

    def __init__(self, client: Any, bucket: str, prefix: str, cache: Path) -> None:
        self.client, self.bucket, self.prefix, self.cache = client, bucket, prefix.strip("/"), cache
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.where = self.url

    @classmethod
    def from_url(cls, url: str, *, cache: Path) -> S3Store:
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return cls(_client(), bucket, prefix, cache)

    def location(self, key: str) -> str:
        return f"version {self.url}/{key}"

    def local_path(self, key: str) -> Path:
        return self.cache / key

    def read_small(self, key: str, name: str) -> bytes | None:
        marker = self._get(self._object(key, CHECKSUMS_FILE))
        if marker is None or name == CHECKSUMS_FILE:
            return marker
        cached = self.local_path(key)
        if _read(cached / CHECKSUMS_FILE) == marker:
            return _read(cached / name)
        digest = self._listed(key, marker).get(name)
        if digest is None:
            return None
        data = self._get(self._object(key, name))
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(
                f"{version_ref(key)}'s {name} in {self.url}/{key} is not the file registered (its sha256 differs "
                f"from {CHECKSUMS_FILE}): it was damaged, overwritten or removed; restore it from a backup",
                field=name,
            )
        return data

    def exists(self, key: str) -> bool:
        return self._get(self._object(key, CHECKSUMS_FILE), head=True) is not None

    @contextmanager
    def stage(self, tmp: Path) -> Iterator[_S3Staged]:
        staged = _S3Staged(self, tmp, secrets.token_hex(8))
        try:
            for name in staged.files:
                with self._calls(f"upload {name}"):
                    self.client.upload_file(str(tmp / name), self.bucket, self._object(f".tmp/{staged.token}", name))
            yield staged
        finally:
            try:
                self._delete_prefix(f".tmp/{staged.token}")
            except StoreError as exc:  # never hides the error in flight, nor fails a committed version
                logger.warning("could not remove the staged upload (`modelyard models gc` will): %s", exc)

    def folder(self, key: str) -> Path:
        marker = self._get(self._object(key, CHECKSUMS_FILE))
        if marker is None:
            raise StoreError(
                f"{version_ref(key)} is registered but {self.url}/{key}/{CHECKSUMS_FILE} is missing from the artifact "
                f"store; restore the bucket from a backup, or delete the version",
                field="ref",
            )
        cached = self.local_path(key)
        if _read(cached / CHECKSUMS_FILE) == marker:
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = user_folder(cached.parent, TMP_PREFIX)
        try:
            for name, digest in self._listed(key, marker).items():
                with self._calls(f"download {key}/{name}"):
                    self.client.download_file(self.bucket, self._object(key, name), str(tmp / name))
                if sha256_file(tmp / name) != digest:
                    raise StoreError(
                        f"{version_ref(key)}'s {name} in {self.url}/{key} is not the file registered (its sha256 differs "
                        f"from {CHECKSUMS_FILE}): it was damaged or overwritten; restore it from a backup, or "
                        f"register the model again",
                        field=name,
                    )
            (tmp / CHECKSUMS_FILE).write_bytes(marker)
            _replace(cached, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cached

    def versions(self, key: str) -> list[int]:
        found = {parts[0] for parts in self._markers(key) if len(parts) == 1}
        return sorted(int(v) for v in found if v.isdigit())

    def names(self, kind: str) -> list[str]:
        return sorted({parts[0] for parts in self._markers(kind) if len(parts) == 2 and parts[1].isdigit()})

    def orphans(self, keep: set[str], *, written_before: float) -> list[tuple[str, str, int]]:
        """``(key, reason, bytes)`` of what no row owns: model versions without a row, keys without a
        marker (a registration that died mid-copy) and ``.tmp/`` uploads, each only when last written
        before ``written_before`` (epoch seconds), so a registration still copying or committing is never taken. Data sets have no rows: a published one is never an orphan. Objects of any
        other shape under the prefix are not modelyard's and are left alone."""
        base = f"{self.prefix}/" if self.prefix else ""
        groups: dict[str, dict[str, Any]] = {}
        with self._calls(f"list {self.url}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    parts = obj["Key"][len(base) :].split("/")
                    if parts[0] == ".tmp" and len(parts) == 3:
                        key = "/".join(parts[:2])
                    elif parts[0] in ("models", "datasets") and len(parts) == 4 and parts[2].isdigit():
                        key = "/".join(parts[:3])
                    else:
                        continue
                    group = groups.setdefault(key, {"size": 0, "newest": 0.0, "marker": False})
                    group["size"] += int(obj.get("Size", 0))
                    group["newest"] = max(group["newest"], obj["LastModified"].timestamp())
                    group["marker"] |= parts[-1] == CHECKSUMS_FILE
        found = []
        for key, group in sorted(groups.items()):
            if (
                group["newest"] >= written_before
            ):  # may be a registration in flight: copying, or its row not committed yet
                reason = None
            elif key.startswith(".tmp/"):
                reason = "left by an interrupted registration"
            elif not group["marker"]:
                reason = "left by a registration that died before publishing"
            elif key.startswith("models/") and key not in keep:
                reason = f"version {version_ref(key).split(' ', 1)[1]}, which has no row"
            else:
                reason = None
            if reason is not None:
                found.append((key, reason, group["size"]))
        return found

    def remove(self, key: str) -> None:
        """Delete everything under ``key`` (an orphan), its marker first."""
        self._delete_version(key)

    @contextmanager
    def removing(self, key: str) -> Iterator[None]:
        yield  # the row's removal committed: from here on the files are nobody's
        try:
            self._delete_version(key)
        except StoreError as exc:  # the version is gone from the database; its leftovers only cost space
            logger.warning("deleted %s but could not remove its objects: %s", key, exc)
        shutil.rmtree(self.local_path(key), ignore_errors=True)

    # --- bucket calls -----------------------------------------------------------------------

    def _object(self, key: str, name: str) -> str:
        return f"{self.prefix}/{key}/{name}" if self.prefix else f"{key}/{name}"

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        from boto3.exceptions import Boto3Error  # S3UploadFailedError of upload_file
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (Boto3Error, BotoCoreError, ClientError, OSError) as exc:
            raise StoreError(f"The artifact store {self.url} could not {what}: {exc}", field="artifacts") from None

    def _get(self, obj: str, *, head: bool = False) -> bytes | None:
        """The object's bytes (``b""`` for ``head``), None when it does not exist."""
        from botocore.exceptions import ClientError

        with self._calls(f"read {obj}"):
            try:
                if head:
                    self.client.head_object(Bucket=self.bucket, Key=obj)
                    return b""
                return bytes(self.client.get_object(Bucket=self.bucket, Key=obj)["Body"].read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def _copy(self, source: str, target: str) -> None:
        with self._calls(f"copy {source} to {target}"):
            self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target)

    def _delete_prefix(self, key: str) -> None:
        prefix = self._object(key, "")
        with self._calls(f"delete {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objects:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def _markers(self, key: str) -> list[list[str]]:
        """The folders under ``key`` holding a checksums.json, as parts relative to it (``["people", "2"]``)."""
        prefix = self._object(key, "")
        with self._calls(f"list {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            found = [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]
        return [k.split("/")[:-1] for k in found if k.endswith("/" + CHECKSUMS_FILE)]

    def _delete_version(self, key: str) -> None:
        """The marker first, so no reader sees a version with files missing; then the rest."""
        with self._calls(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key, CHECKSUMS_FILE))
        self._delete_prefix(key)

    def _listed(self, key: str, marker: bytes) -> dict[str, str]:
        try:
            digests = json.loads(marker)["sha256"]
            if not isinstance(digests, dict):
                raise TypeError("sha256 is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"The {CHECKSUMS_FILE} of {version_ref(key)} in {self.url} is unreadable: {exc}", field=CHECKSUMS_FILE
            ) from None
        bad = [n for n, d in digests.items() if not (isinstance(n, str) and _FILE_NAME.match(n) and isinstance(d, str))]
        if bad:
            raise StoreError(
                f"The {CHECKSUMS_FILE} of {version_ref(key)} in {self.url} lists {bad[0]!r}: expected plain file names "
                f"with sha256 digests",
                field=CHECKSUMS_FILE,
            )
        return digests


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _replace(cached: Path, fresh: Path) -> None:
    """Put the checked download ``fresh`` at ``cached``; a stale copy there is moved aside first.

    A copy with the same marker (another thread or process of this home fetched it meanwhile, and
    may be reading it) is kept: ``fresh`` is then dropped by the caller."""
    if _read(cached / CHECKSUMS_FILE) == _read(fresh / CHECKSUMS_FILE):
        return
    old = cached.with_name(f"{TRASH_PREFIX}{cached.name}-{secrets.token_hex(4)}")
    if cached.exists():
        os.rename(cached, old)
    try:
        os.rename(fresh, cached)
    except OSError:
        if not cached.is_dir():  # not a concurrent reader that put the same copy first
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
