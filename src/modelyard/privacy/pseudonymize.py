"""Keyed pseudonymisation: each value becomes HMAC-SHA256(key, value), hex, cut to ``length``.

The same value under the same key always gives the same pseudonym (joins and counts survive),
and without the key nobody can recompute one from a guessed value (an unkeyed hash of a phone
number is reversed by hashing every phone number). The key comes from an environment variable
or a key file; it is never part of the config, the stored dataset, its lineage or any message.
The lineage records only a key id (an HMAC of a fixed label), so two datasets can be seen to
share a key, and so joinable pseudonyms, without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from modelyard.errors import UsageError
from modelyard.privacy.steps import ANONYMIZERS, Columns, TableStep, require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PseudonymizeOptions", "DEFAULT_KEY_ENV", "MIN_KEY_BYTES", "load_key", "key_id", "pseudonym"]

DEFAULT_KEY_ENV = "MODELYARD_PSEUDONYM_KEY"
# NIST SP 800-107 asks an HMAC key for at least the security strength wanted: 128 bits.
MIN_KEY_BYTES = 16


class PseudonymizeOptions(Columns):
    key_env: str = Field(DEFAULT_KEY_ENV, min_length=1)
    key_file: str | None = Field(None, min_length=1)
    length: int = Field(16, ge=8, le=64)  # hex characters: 16 = 64 bits, no collision among millions


def load_key(opts: PseudonymizeOptions, field: str) -> bytes:
    """The key from ``key_file`` if given, else from ``$key_env``; a missing or short key is one line."""
    if opts.key_file is not None:
        path = Path(opts.key_file).expanduser()
        try:
            key = path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise UsageError(
                f"Missing pseudonymisation key for `{field}`: cannot read key_file {path} ({type(exc).__name__})",
                field=f"{field}.key_file",
            ) from None
        source = f"key_file {path}"
    else:
        value = os.environ.get(opts.key_env)
        if not value:
            raise UsageError(
                f"Missing pseudonymisation key for `{field}`: set the environment variable {opts.key_env} "
                f"(or give key_file) to a secret of at least {MIN_KEY_BYTES} bytes; it is never stored",
                field=f"{field}.key_env",
            )
        key, source = value.encode("utf-8"), f"environment variable {opts.key_env}"
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(
            f"Invalid pseudonymisation key for `{field}`: the {source} holds {len(key)} bytes, expected at least "
            f"{MIN_KEY_BYTES} (for example: python -c 'import secrets; print(secrets.token_hex(32))')",
            field=field,
        )
    return key


def key_id(key: bytes) -> str:
    """A short fingerprint of the key that does not reveal it (HMAC of a fixed label)."""
    return hmac.new(key, b"modelyard pseudonymisation key id", hashlib.sha256).hexdigest()[:12]


def pseudonym(key: bytes, value: str, length: int = 16) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:length]


def _text(value: Any) -> str:
    """The text a value is keyed by: 42, 42.0 (an integer column with gaps) and "42" are one id."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Pseudonymize(TableStep):
    key: bytes | None = None

    def check(self, columns: list[str], field: str, where: str) -> list[str]:
        require_columns(self.opts.columns, columns, f"{field}.columns", where)
        self.key = load_key(self.opts, field)  # before any row is touched
        return columns

    def apply(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        assert self.key is not None, "check() loads the key"
        key, length = self.key, self.opts.length
        out = frame.copy()
        done = report.setdefault("pseudonymized", {})
        for name in self.opts.columns:
            column = frame[name]
            present = column.notna()
            out[name] = column.astype(object).where(
                ~present, column[present].map(lambda v: pseudonym(key, _text(v), length))
            )
            done[name] = {"values": int(present.sum()), "distinct": int(column[present].nunique())}
        report.setdefault("key_ids", {}).update({name: key_id(key) for name in self.opts.columns})
        return out


@ANONYMIZERS.component("pseudonymize", "pseudonymise", options=PseudonymizeOptions, primary="columns")
def pseudonymize(opts: PseudonymizeOptions) -> TableStep:
    """Replace values by keyed HMAC-SHA256 pseudonyms (the key from key_env or key_file, never stored)."""
    return _Pseudonymize(opts)
