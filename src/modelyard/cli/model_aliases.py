"""`modelyard models alias set NAME:N ALIAS`, `models alias delete NAME ALIAS` and `models alias list [NAME]`.

An alias (`production`, `staging`, any name) points to one version and moves only when told;
`NAME@ALIAS` then addresses that version everywhere, and the bare `NAME` is `NAME@production`
when that alias is set (modelyard.store.resolve).
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from modelyard.cli._fmt import console
from modelyard.cli._nouns import NounGroup
from modelyard.errors import UsageError

__all__ = ["alias"]


@click.group("alias", cls=NounGroup)
def alias() -> None:
    """Name versions: production, staging, or any alias (NAME@ALIAS): list (the default), set, delete."""


@alias.command("set")
@click.argument("ref", metavar="NAME:N")
@click.argument("name", metavar="ALIAS")
@click.pass_obj
def set_alias(obj: dict, ref: str, name: str) -> None:
    """Point NAME@ALIAS at version NAME:N (NAME:latest or NAME@OTHER work too), creating or moving it."""
    from modelyard.store import ModelStore

    moved = ModelStore(obj["home"]).set_alias(ref, name)
    if moved.previous is None:
        click.echo(f"{moved.ref} → {moved.target} (new alias)")
    elif moved.previous == moved.version:
        click.echo(f"{moved.ref} → {moved.target} (unchanged)")
    else:
        click.echo(f"{moved.ref}: {moved.name}:{moved.previous} → {moved.target}")


@alias.command("delete")
@click.argument("target", metavar="NAME[@ALIAS]")
@click.argument("name", metavar="[ALIAS]", required=False)
@click.pass_obj
def delete_alias(obj: dict, target: str, name: str | None) -> None:
    """Remove an alias: `models alias delete NAME ALIAS` or `models alias delete NAME@ALIAS`. Its version stays."""
    from modelyard.store import ModelStore

    model, at, written = target.partition("@")
    if at and name is not None:
        raise UsageError(f"Give the alias once: `{target}` or `{model} {name}`, received both")
    alias_name = written if at else name
    if alias_name is None:
        raise UsageError(f"Missing ALIAS: expected `models alias delete {model} ALIAS` or `{model}@ALIAS`")
    gone = ModelStore(obj["home"]).delete_alias(model, alias_name)
    click.echo(f"deleted {gone.ref} (it pointed to {gone.target}, which stays)")


@alias.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_aliases(obj: dict, name: str | None, as_json: bool) -> None:
    """Every alias (of NAME if given) and the version it points to."""
    from modelyard.store import ModelStore

    store = ModelStore(obj["home"])
    found = store.aliases(name)
    kinds = {v.ref: v.kind for v in store.list(name)}
    if as_json:
        click.echo(json.dumps([a.to_dict() | {"kind": kinds.get(a.target)} for a in found], indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("alias", "version", "kind", "updated"):
        table.add_column(col)
    for a in found:
        table.add_row(a.ref, a.target, kinds.get(a.target, "-"), str(a.updated_at)[:19])
    console().print(table)
