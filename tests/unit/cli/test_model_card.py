"""`modelyard models card`: prints (or writes with -o) exactly the card modelyard.cards renders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelyard.cards import model_card
from modelyard.store import ModelStore
from tests.support.cards import front_matter
from tests.support.cli import run_cli
from tests.support.console import train_digits


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("card-cli") / "home"
    ref = train_digits(home)
    ModelStore(home).set_alias(ref, "staging")
    return home, ref


def test_card_prints_the_card_of_a_version_an_alias_or_the_bare_name(trained: tuple[Path, str]) -> None:
    home, ref = trained
    want = model_card(home, ref)
    assert front_matter(want)["ref"] == ref and "digits-small@staging" in want
    for given in (ref, "digits-small@staging", "digits-small"):
        result = run_cli("--home", str(home), "models", "card", given)
        assert (result.code, result.out, result.err) == (0, want, "")


def test_card_writes_a_file_with_the_users_umask(trained: tuple[Path, str], tmp_path: Path) -> None:
    home, ref = trained
    target = tmp_path / "card.md"
    previous = os.umask(0o027)
    try:
        result = run_cli("--home", str(home), "models", "card", ref, "-o", str(target))
    finally:
        os.umask(previous)
    assert (result.code, result.out, result.err) == (0, "", f"wrote {target}\n")
    assert target.read_text(encoding="utf-8") == model_card(home, ref)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_card_errors_are_one_line(trained: tuple[Path, str], tmp_path: Path) -> None:
    home, _ = trained
    missing = run_cli("--home", str(home), "models", "card", "digits-small:9")
    assert missing.code == 4 and missing.out == ""
    assert missing.err == "error: Model 'digits-small' has no version 9; its versions are 1\n"
    target = tmp_path / "no-such-folder" / "card.md"
    folder = run_cli("--home", str(home), "models", "card", "digits-small:1", "-o", str(target))
    assert folder.code == 3 and folder.err.count("\n") == 1 and "`--output`" in folder.err
    assert not target.parent.exists()
