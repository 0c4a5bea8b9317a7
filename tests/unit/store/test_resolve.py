"""Model references: NAME@ALIAS, the bare-name rule (production, else newest trained), kinds, guarded delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.errors import InputError, NotFoundError, StoreError
from modelyard.store import ModelStore
from modelyard.store import db as store_db
from modelyard.store.refs import Ref, parse_ref
from tests.support.databases import execute
from tests.unit.store.test_models import register


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


def derived(store: ModelStore, operation: str, parent: str, **options: object) -> str:
    return register(store, seed=9, lineage={"parent": parent, "operation": operation, "options": options}).ref


def test_refs_parse_versions_aliases_and_latest() -> None:
    assert parse_ref("m") == Ref("m") and parse_ref("m").bare
    assert parse_ref(" m:3 ") == Ref("m", version=3)
    assert parse_ref("m:latest") == Ref("m", latest=True)
    assert parse_ref("m@production") == Ref("m", alias="production")
    for bad in ("m@latest", "m@3", "m:0", "m:3@x", "m@", "M@prod", "m@Prod"):
        with pytest.raises(InputError, match="expected NAME, NAME:VERSION or NAME@ALIAS"):
            parse_ref(bad)
    with pytest.raises(InputError, match="an alias is written m@production"):
        parse_ref("m:production")


def test_a_derived_version_never_becomes_the_bare_name() -> None:
    store = ModelStore()
    parent = register(store, seed=1).ref  # trained, 88.8%
    kinds = {}
    for operation, options in (("distill", {}), ("quantize", {"dtype": "int8"}), ("prune", {}), ("export", {})):
        kinds[derived(store, operation, parent, **options)] = operation
    assert store.get("fashion-mlp").ref == parent == "fashion-mlp:1"  # was fashion-mlp:5 (the export)
    assert store.get("fashion-mlp:latest").ref == "fashion-mlp:5"
    assert [(v.ref, v.kind, v.parent) for v in store.list()] == [
        ("fashion-mlp:1", "trained", None),
        ("fashion-mlp:2", "distilled", parent),
        ("fashion-mlp:3", "int8", parent),
        ("fashion-mlp:4", "pruned", parent),
        ("fashion-mlp:5", "exported", parent),
    ]
    assert store.resolve("fashion-mlp")[1] == "newest trained version"
    retrained = register(store, seed=2).ref
    assert store.get("fashion-mlp").ref == retrained == "fashion-mlp:6"


def test_a_name_with_only_derived_versions_resolves_to_its_newest() -> None:
    store = ModelStore()
    parent = register(store).ref
    register(store, name="small", lineage={"parent": parent, "operation": "distill"})
    newest = register(store, name="small", lineage={"parent": parent, "operation": "prune"}).ref
    assert store.resolve("small") == (store.get(newest), "newest version (the model has no trained version)")


def test_aliases_point_move_and_win_over_newer_versions() -> None:
    store = ModelStore()
    one, two = register(store, seed=1).ref, register(store, seed=2).ref
    assert store.set_alias(one, "production").previous is None
    assert store.get(one).aliases == ("production",)
    assert store.get("fashion-mlp").ref == one  # production wins over the newer trained version
    assert store.resolve("fashion-mlp")[1] == "alias production"
    store.set_alias("fashion-mlp:latest", "staging")
    assert store.get("fashion-mlp@staging").ref == two
    assert store.get(two).aliases == ("staging",)
    assert (store.set_alias(two, "production").previous, store.get(two).aliases) == (1, ("production", "staging"))
    assert store.get("fashion-mlp").ref == two and store.get("fashion-mlp@production").aliases == (
        "production",
        "staging",
    )
    assert [(a.name, a.alias, a.version) for a in store.aliases()] == [
        ("fashion-mlp", "production", 2),
        ("fashion-mlp", "staging", 2),
    ]
    assert [v.aliases for v in store.list()] == [(), ("production", "staging")]
    assert store.delete_alias("fashion-mlp", "production").version == 2
    assert store.get("fashion-mlp").ref == two  # newest trained again
    with pytest.raises(NotFoundError, match=r"no alias 'production' \(its aliases: fashion-mlp@staging\); set one"):
        store.get("fashion-mlp@production")
    with pytest.raises(NotFoundError, match="no alias 'nope'"):
        store.delete_alias("fashion-mlp", "nope")
    with pytest.raises(InputError, match="Invalid value for `alias`: expected an alias such as production"):
        store.set_alias(one, "latest")
    with pytest.raises(NotFoundError, match="has no version 9"):
        store.set_alias("fashion-mlp:9", "production")


def test_delete_refuses_an_aliased_or_used_version_unless_forced() -> None:
    store = ModelStore()
    one, two = register(store, seed=1), register(store, seed=2)
    store.set_alias(one.ref, "production")
    with pytest.raises(StoreError, match=r"Refused to delete fashion-mlp:1: fashion-mlp@production points to it"):
        store.delete(one.ref)
    with pytest.raises(InputError, match="expected an explicit NAME:VERSION"):
        store.delete("fashion-mlp@production")
    with pytest.raises(StoreError, match="it is served by deployment web"):
        store.delete(two.ref, in_use=lambda _session, ref: ["deployment web"] if ref == two.ref else [])
    assert two.path.is_dir() and store.get(two.ref) == two
    assert store.delete(one.ref, force=True).ref == one.ref
    assert not one.path.exists() and store.aliases() == []
    assert store.get("fashion-mlp").ref == two.ref


def test_a_schema_2_store_is_migrated_and_keeps_its_versions(home: Path) -> None:
    store = ModelStore()
    parent = register(store, seed=1)
    derived(store, "distill", parent.ref)
    # As schema 2 left it, before the store had Alembic: no aliases table, its schema only in meta.
    execute(
        home,
        "DROP TABLE model_aliases",
        "UPDATE meta SET value='2' WHERE key='schema_version'",
        "DROP TABLE alembic_version",
    )
    store = ModelStore()
    assert store.get("fashion-mlp").load_state_dict().keys() == parent.load_state_dict().keys()
    assert store_db.database().schema_version() == store_db.SCHEMA_VERSION == 3
    store.set_alias("fashion-mlp:2", "staging")
    assert store.get("fashion-mlp@staging").kind == "distilled"
