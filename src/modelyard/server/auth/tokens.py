"""API tokens of the control plane, stored hashed in ``<home>/server/tokens.json``.

A token is shown once, when it is created; only its SHA-256 is kept (a token is 256
random bits, so a plain hash is enough: there is nothing to brute-force). Roles:
``read`` (GET requests) and ``admin`` (everything). The server re-reads the file when it
changes, so ``modelyard server token create|revoke`` takes effect on a running server.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modelyard._files import atomic_write_text
from modelyard.errors import InputError, NotFoundError, StoreError
from modelyard.store import paths

__all__ = ["ROLES", "TOKEN_PREFIX", "TokenInfo", "TokenStore", "hash_token", "secret_key"]

ROLES = ("read", "admin")
TOKEN_PREFIX = "myd_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token besides the token itself."""

    id: str
    name: str
    role: str
    created_at: str
    sha256: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "created_at": self.created_at}


class TokenStore:
    """The tokens of the store at ``home`` (file created on the first ``create``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.folder = paths.home(home) / "server"
        self.path = self.folder / "tokens.json"
        self._cache: tuple[tuple[int, int] | None, builtins.list[TokenInfo]] = (None, [])
        self._lock = threading.Lock()

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, re-read only when the file changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if self._cache[0] != key:
                self._cache = (key, self._read())
            return builtins.list(self._cache[1])

    def any(self) -> bool:
        return bool(self.list())

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info if ``token`` is a known token, else None (constant-time compare)."""
        digest = hash_token(token.strip())
        found = None
        for info in self.list():
            if hmac.compare_digest(info.sha256, digest):
                found = info
        return found

    def by_id(self, token_id: str) -> TokenInfo | None:
        return next((t for t in self.list() if t.id == token_id), None)

    def create(self, role: str, name: str | None = None) -> tuple[TokenInfo, str]:
        """A new token of ``role``: returns its info and the token (shown once, never stored)."""
        if role not in ROLES:
            raise InputError(
                f"Invalid value for `role`: expected one of {', '.join(ROLES)}, received {role!r}", field="role"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._edit() as tokens:
            token_id = "t-" + secrets.token_hex(4)
            name = (name or f"{role}-{token_id[2:]}").strip()
            if not name or len(name) > 64 or any(t.name == name for t in tokens):
                raise InputError(
                    f"Invalid value for `name`: expected a new name of 1-64 characters, received {name!r}", field="name"
                )
            info = TokenInfo(
                id=token_id,
                name=name,
                role=role,
                sha256=hash_token(token),
                created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            tokens.append(info)
        return info, token

    def revoke(self, key: str) -> TokenInfo:
        """Remove the token with id or name ``key``."""
        with self._edit() as tokens:
            found = next((t for t in tokens if key in (t.id, t.name)), None)
            if found is None:
                known = ", ".join(f"{t.id} ({t.name})" for t in tokens) or "none"
                raise NotFoundError(
                    f"Unknown token {key!r}: expected a token id or name; tokens: {known}", field="token"
                )
            tokens.remove(found)
        return found

    def _read(self) -> builtins.list[TokenInfo]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [TokenInfo(**item) for item in data["tokens"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"The token file {self.path} is unreadable ({exc}); fix or delete it and create tokens again",
                field="tokens",
            ) from None

    @contextmanager
    def _edit(self) -> Iterator[builtins.list[TokenInfo]]:
        """Read-modify-write under an exclusive lock (the CLI and the server may both write)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / "tokens.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            tokens = self._read()
            yield tokens
            # private: mode 0600 whatever the umask (token hashes are secrets).
            body = json.dumps({"version": 1, "tokens": [asdict(t) for t in tokens]}, indent=2)
            atomic_write_text(self.path, body, private=True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def secret_key(home: str | Path | None = None) -> bytes:
    """The server's key for signing session cookies (created once, mode 0600)."""
    path = paths.home(home) / "server" / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secret.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
            os.link(tmp, path)  # atomic and never overwrites: two servers agree on one key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"The session key {path} is unreadable ({exc}); delete it (sessions start over)", field="secret_key"
        ) from None
