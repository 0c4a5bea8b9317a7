"""Keyed pseudonyms: HMAC-SHA256 as the standard library computes it, the key never stored or shown."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from modelyard.errors import UsageError
from modelyard.privacy import anonymize_frame, load_config

KEY = "pseudonym-key-for-tests-0123456789"


def _frame():
    import pandas as pd

    return pd.DataFrame({"id": [17, 42, 17, None], "email": ["a@x.org", "b@x.org", "a@x.org", "c@x.org"]})


def _run(monkeypatch: pytest.MonkeyPatch, key: str | None = KEY, **options):
    if key is None:
        monkeypatch.delenv("MODELYARD_PSEUDONYM_KEY", raising=False)
    else:
        monkeypatch.setenv("MODELYARD_PSEUDONYM_KEY", key)
    config = load_config({"name": "t", "steps": [{"pseudonymize": {"columns": ["id", "email"], **options}}]})
    return anonymize_frame(config, _frame())


def test_pseudonyms_are_hmac_sha256_of_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    out, report = _run(monkeypatch)
    expected = hmac.new(KEY.encode(), b"a@x.org", hashlib.sha256).hexdigest()[:16]
    assert out["email"][0] == out["email"][2] == expected
    assert out["email"][1] != expected
    # pandas holds the ids as 17.0 (the column has a gap): keyed as "17", as in a column without one.
    assert out["id"][0] == hmac.new(KEY.encode(), b"17", hashlib.sha256).hexdigest()[:16]
    assert pd.isna(out["id"][3])  # missing stays missing
    assert report["pseudonymized"] == {"id": {"values": 3, "distinct": 2}, "email": {"values": 4, "distinct": 3}}
    other, _ = _run(monkeypatch, key=KEY + "x")
    assert not set(other["email"]) & set(out["email"])  # another key, other pseudonyms


def test_the_key_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_file, _ = _run(monkeypatch, key=None, key_file=str(key_file), length=32)
    assert from_file["email"][0] == hmac.new(KEY.encode(), b"a@x.org", hashlib.sha256).hexdigest()[:32]


def test_a_missing_key_is_one_line_naming_where_to_put_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        _run(monkeypatch, key=None)
    assert info.value.message == (
        "Missing pseudonymisation key for `steps[0].pseudonymize`: set the environment variable "
        "MODELYARD_PSEUDONYM_KEY (or give key_file) to a secret of at least 16 bytes; it is never stored"
    )
    with pytest.raises(UsageError, match="cannot read key_file"):
        _run(monkeypatch, key=None, key_file=str(tmp_path / "absent"))


def test_a_short_key_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as info:
        _run(monkeypatch, key="short-secret")
    assert "holds 12 bytes, expected at least 16" in info.value.message
    assert "short-secret" not in info.value.message
