"""Files modelyard writes for the user honour the umask (as a plain open would); secrets stay 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard._files import atomic_write_bytes


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path: Path, umask: int) -> None:
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")  # the reference: what open() gives under this umask
    written = atomic_write_bytes(tmp_path / "graph.onnx", b"x")
    assert _mode(written) == _mode(plain) == 0o666 & ~umask


def test_private_writes_stay_0600(tmp_path: Path, umask: int) -> None:
    assert _mode(atomic_write_bytes(tmp_path / "secret", b"x", private=True)) == 0o600


def test_token_file_stays_0600(tmp_path: Path, umask: int) -> None:
    from modelyard.server.auth.tokens import TokenStore, secret_key

    store = TokenStore(tmp_path)
    store.create("admin", name="ops")
    assert _mode(store.path) == 0o600
    secret_key(tmp_path)
    assert _mode(tmp_path / "server" / "secret.key") == 0o600


def test_a_registered_version_is_readable_as_the_umask_allows(tmp_path: Path, umask: int) -> None:
    from tests.support.compression import train_digits

    plain = tmp_path / "plain"
    plain.mkdir()
    ref = train_digits(tmp_path / "home", epochs=1, hidden=(8,))
    name, _, version = ref.partition(":")
    folder = next((tmp_path / "home").rglob(f"{name}/{version}"))
    assert _mode(folder) == _mode(plain) == 0o777 & ~umask
    files = [p for p in folder.rglob("*") if p.is_file()]
    odd = [(p.name, oct(_mode(p))) for p in files if _mode(p) != 0o666 & ~umask]
    assert files and not odd, odd
