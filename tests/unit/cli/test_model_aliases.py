"""`models alias set|delete|list`: create and move an alias (from → to), remove it, list it; bad names in one line."""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.store import ModelStore
from tests.support.cli import run_cli
from tests.support.serving import register


def cli(home: Path, *args: str):  # noqa: ANN201
    return run_cli("--home", str(home), "models", "alias", *args)


def test_set_moves_and_says_from_where(home: Path) -> None:
    one, two = register("clf", home, seed=1), register("clf", home, seed=2)
    assert cli(home, "set", one, "production").out == "clf@production → clf:1 (new alias)\n"
    assert ModelStore(home).get("clf").ref == one  # production wins over the newer clf:2
    assert cli(home, "set", two, "production").out == "clf@production: clf:1 → clf:2\n"
    assert cli(home, "set", two, "production").out == "clf@production → clf:2 (unchanged)\n"
    assert cli(home, "set", "clf@production", "staging").out == "clf@staging → clf:2 (new alias)\n"  # promote
    assert ModelStore(home).get("clf@staging").ref == two


def test_list_as_table_and_json(home: Path) -> None:
    one = register("clf", home, seed=1)
    derived = register("clf", home, seed=2, lineage={"parent": one, "operation": "distill"})
    register("reg", home)
    cli(home, "set", one, "production")
    cli(home, "set", derived, "candidate")
    cli(home, "set", "reg:1", "staging")
    rows = json.loads(cli(home, "list", "--json").out)
    assert [(r["ref"], r["model"], r["kind"]) for r in rows] == [
        ("clf@candidate", "clf:2", "distilled"),
        ("clf@production", "clf:1", "trained"),
        ("reg@staging", "reg:1", "trained"),
    ]
    assert all(r["updated_at"].endswith("+00:00") for r in rows)
    table = cli(home, "list", "clf").out
    assert "clf@production" in table and "clf@candidate" in table and "distilled" in table
    assert "reg@staging" not in table


def test_delete_by_two_words_or_one_ref(home: Path) -> None:
    one = register("clf", home)
    cli(home, "set", one, "production")
    cli(home, "set", one, "staging")
    assert cli(home, "delete", "clf", "production").out == "deleted clf@production (it pointed to clf:1, which stays)\n"
    assert cli(home, "delete", "clf@staging").code == 0
    assert ModelStore(home).aliases() == [] and ModelStore(home).get(one).ref == one


def test_bad_input_is_one_line_naming_the_field(home: Path) -> None:
    one = register("clf", home)
    bad = cli(home, "set", one, "Prod")
    assert bad.code == 3 and bad.err.count("\n") == 1
    assert bad.err.startswith("error: Invalid value for `alias`: expected an alias such as production")
    assert "received 'Prod'" in bad.err
    bare = cli(home, "set", "clf", "production")
    assert bare.code == 3 and "expected an explicit NAME:VERSION (or clf:latest, or clf@ALIAS)" in bare.err
    assert cli(home, "set", one, "latest").code == 3
    missing = cli(home, "set", "clf:7", "production")
    assert missing.code == 4 and "has no version 7" in missing.err
    unknown = cli(home, "list", "clff")
    assert unknown.code == 4 and "did you mean 'clf'?" in unknown.err
    gone = cli(home, "delete", "clf", "production")
    assert gone.code == 4 and "error: Model 'clf' has no alias 'production' (its aliases: none)" in gone.err
    both = cli(home, "delete", "clf@production", "staging")
    assert both.code == 2 and "Give the alias once" in both.err
    assert cli(home, "delete", "clf").code == 2
    assert ModelStore(home).aliases() == []
