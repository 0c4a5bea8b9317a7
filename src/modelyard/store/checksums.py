"""Every file of a model version carries its sha256, recorded at registration and checked on read.

A version folder is written once and never changed, so a file whose bytes differ from the
recorded digest was damaged or overwritten (a disk fault, a careless copy, a stray edit): one
flipped float in ``weights.safetensors`` still loads and silently predicts worse. The digests
live in the folder's ``checksums.json``; versions registered before it existed have none and
load as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from modelyard.errors import StoreError

__all__ = ["CHECKSUMS_FILE", "write_checksums", "verified", "sha256_file"]

CHECKSUMS_FILE = "checksums.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """Record the digest of every file in ``folder`` (a version being registered)."""
    digests = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != CHECKSUMS_FILE}
    (folder / CHECKSUMS_FILE).write_text(json.dumps({"sha256": digests}, indent=2, sort_keys=True) + "\n")


def verified(folder: Path, filename: str, ref: str) -> Path:
    """``folder / filename``, after checking it against the recorded digest (if one was recorded)."""
    path = folder / filename
    record = folder / CHECKSUMS_FILE
    if not record.is_file() or not path.is_file():
        return path  # a version from before checksums, or a missing file the caller reports
    try:
        expected = json.loads(record.read_text(encoding="utf-8"))["sha256"].get(filename)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise StoreError(
            f"The checksums of model {ref} are unreadable ({record}): {exc}", field=CHECKSUMS_FILE
        ) from None
    if expected is not None and sha256_file(path) != expected:
        raise StoreError(
            f"Model {ref}'s {filename} is not the file registered (its sha256 differs from {record.name}): it was "
            f"damaged or overwritten; restore {folder} from a backup, or register the model again",
            field=filename,
        )
    return path
