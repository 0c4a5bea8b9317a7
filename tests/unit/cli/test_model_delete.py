"""`models delete NAME:N [--force]` and `models gc [--dry-run]`: refusals (aliased, deployed, not explicit), exit codes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.deployments.store import DeploymentStore
from modelyard.store import ModelStore
from modelyard.store import db as store_db
from modelyard.store.gc import folder_size
from tests.support.cli import run_cli
from tests.support.serving import register


def cli(home: Path, *args: str):  # noqa: ANN201
    return run_cli("--home", str(home), "models", *args)


def test_delete_removes_the_version_and_keeps_what_was_derived_from_it(home: Path) -> None:
    one = register("clf", home, seed=1)
    child = register("clf", home, seed=2, lineage={"parent": one, "operation": "quantize", "options": {}})
    folder = ModelStore(home).get(one).path
    done = cli(home, "delete", one)
    assert done.code == 0, done.err
    assert done.out.startswith("deleted clf:1 (trained, ")
    assert "kept the versions derived from it, whole: clf:2 (int8)" in done.out
    assert not folder.exists() and [v.ref for v in ModelStore(home).list()] == [child]
    assert ModelStore(home).get(child).parent == one  # its lineage still says where it came from


def test_delete_refuses_an_aliased_version_unless_forced(home: Path) -> None:
    one = register("clf", home)
    ModelStore(home).set_alias(one, "production")
    refused = cli(home, "delete", one)
    assert refused.code == 5 and "clf@production points to it" in refused.err
    assert ModelStore(home).get(one).path.is_dir()
    forced = cli(home, "delete", one, "--force")
    assert forced.code == 0 and "removed aliases: clf@production" in forced.out
    assert ModelStore(home).aliases() == []


def test_delete_refuses_a_version_a_deployment_serves_even_with_force(home: Path) -> None:
    one, two = register("clf", home, seed=1), register("clf", home, seed=2)
    DeploymentStore(home).create(DeploymentRequest(name="web", model="clf"), one)  # as the control plane records it
    for args in ((one,), (one, "--force"), ("clf:1",)):
        refused = cli(home, "delete", *args)
        assert refused.code == 5
        assert (
            refused.err
            == "error: Refused to delete clf:1: it is served by deployment web (starting); delete or redeploy that first\n"
        )
    assert ModelStore(home).get(one).path.is_dir()
    assert cli(home, "delete", two).code == 0  # nothing serves clf:2


def test_delete_needs_an_explicit_version(home: Path) -> None:
    register("clf", home)
    for ref, code in (("clf", 3), ("clf@production", 3), ("clf:9", 4), ("nope:1", 4), ("Bad Name:1", 3)):
        result = cli(home, "delete", ref)
        assert result.code == code, (ref, result.err)
        assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert "expected an explicit NAME:VERSION (or clf:latest)" in cli(home, "delete", "clf").err
    assert len(ModelStore(home).list()) == 1


def test_gc_lists_with_dry_run_then_removes_only_orphans(home: Path) -> None:
    keep, gone = register("clf", home, seed=1), register("clf", home, seed=2)
    store_db.close_all()
    with sqlite3.connect(home / "modelyard.db") as raw:  # a row lost, its folder left
        raw.execute("DELETE FROM model_versions WHERE version = 2")
    raw.close()
    orphan = home / "artifacts" / "models" / "clf" / "2"
    listed = cli(home, "gc", "--dry-run")
    assert listed.code == 0
    assert f"would remove {orphan} (version folder of clf:2, which has no row, " in listed.out
    size = f"{folder_size(orphan) / 1024:.0f} KiB"
    assert listed.out.endswith(f"would remove 1 folder, {size}\n") and orphan.is_dir()
    removed = json.loads(cli(home, "gc", "--json").out)
    assert removed["removed"] is True and [o["path"] for o in removed["orphans"]] == [str(orphan)]
    assert not orphan.exists() and ModelStore(home).get(keep).path.is_dir()
    assert cli(home, "gc").out == "removed 0 folders, 0 KiB\n"
    assert gone == "clf:2"
