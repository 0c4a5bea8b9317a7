"""`models` and `models show`: each version's kind, parent (and whether it is deleted), aliases, and the rule behind a bare name."""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.store import ModelStore
from tests.support.cli import run_cli
from tests.support.serving import register


def cli(home: Path, *args: str):  # noqa: ANN201
    result = run_cli("--home", str(home), "models", *args)
    assert result.code == 0, result.err
    return result


def three(home: Path) -> tuple[str, str, str]:
    parent = register("clf", home, seed=1)
    student = register("clf", home, seed=2, lineage={"parent": parent, "operation": "distill"})
    exported = register("clf", home, seed=3, lineage={"parent": parent, "operation": "export"})
    return parent, student, exported


def test_the_list_shows_kind_parent_and_aliases(home: Path) -> None:
    parent, student, exported = three(home)
    ModelStore(home).set_alias(student, "staging")
    rows = json.loads(cli(home, "--json").out)
    assert [(r["ref"], r["kind"], r["parent"], r["aliases"]) for r in rows] == [
        (parent, "trained", None, []),
        (student, "distilled", parent, ["staging"]),
        (exported, "exported", parent, []),
    ]
    table = cli(home).out.splitlines()
    line = next(row for row in table if student in row)
    assert "distilled" in line and parent in line and "staging" in line
    ModelStore(home).delete(parent)
    after = cli(home).out
    assert f"{parent} (deleted)" in after and after.count("(deleted)") == 2


def test_show_names_the_rule_that_picked_the_bare_name(home: Path) -> None:
    parent, student, _ = three(home)
    shown = cli(home, "show", "clf").out
    assert f"clf → {parent} (the newest trained version; " in shown  # not the newer distilled or exported copy
    assert f"derived versions: {student} (distilled), clf:3 (exported)" in shown
    info = json.loads(cli(home, "show", "clf", "--json").out)
    assert (info["model"], info["kind"], info["resolved_by"]) == (parent, "trained", "newest trained version")
    assert info["derived"] == [{"model": student, "kind": "distilled"}, {"model": "clf:3", "kind": "exported"}]
    ModelStore(home).set_alias(student, "production")
    assert f"clf → {student} (by alias production)" in cli(home, "show", "clf").out
    assert f"clf@production → {student} (by alias production)" in cli(home, "show", "clf@production").out
    explicit = cli(home, "show", student).out
    assert "→" not in explicit and f"kind: distilled, derived from {parent}; aliases: production" in explicit
    info = json.loads(cli(home, "show", student, "--json").out)
    assert (info["kind"], info["parent"], info["parent_deleted"], info["aliases"]) == (
        "distilled",
        parent,
        False,
        ["production"],
    )
    ModelStore(home).delete(parent)
    assert json.loads(cli(home, "show", student, "--json").out)["parent_deleted"] is True
    assert f"derived from {parent} (deleted)" in cli(home, "show", student).out
