"""`modelyard models delete NAME:N [--force]` and `modelyard models gc [--dry-run]`.

A delete is refused while a deployment of the control plane names the version (running or
not: its tables are in this store's database, so the check holds with the server down), and
while an alias points to it unless `--force`. Versions derived from it stay whole.
"""

from __future__ import annotations

import json

import click

from modelyard.cli._fmt import kib

__all__ = ["delete", "gc"]


@click.command("delete")
@click.argument("ref", metavar="NAME:N")
@click.option("--force", is_flag=True, help="Delete even if aliases point to it (they are removed with it).")
@click.pass_obj
def delete(obj: dict, ref: str, force: bool) -> None:
    """Delete one model version: its row, its aliases (with --force) and its folder."""
    from modelyard.server.models.in_use import deployments_serving
    from modelyard.store import ModelStore

    store = ModelStore(obj["home"])
    gone = store.delete(ref, force=force, in_use=deployments_serving)
    click.echo(f"deleted {gone.ref} ({gone.kind}, {kib(gone.size_bytes)} freed)")
    if gone.aliases:
        click.echo("removed aliases: " + ", ".join(f"{gone.name}@{a}" for a in gone.aliases))
    children = store.derived(gone.ref)
    if children:
        shown = ", ".join(f"{v.ref} ({v.kind})" for v in children)
        click.echo(f"kept the versions derived from it, whole: {shown}")


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_obj
def gc(obj: dict, dry_run: bool, as_json: bool) -> None:
    """Remove folders of the store that no row owns (deleted versions and runs, interrupted writes).

    After restoring an older database backup, a version folder without a row may be the only
    copy of that version: run with --dry-run first. With MODELYARD_ARTIFACTS_URL the bucket's keys
    are compared with the rows too (docs/scaling.md).
    """
    from modelyard.store import gc as store_gc
    from modelyard.store import paths

    found = store_gc.collect(paths.home(obj["home"]), remove=not dry_run)
    total = sum(o.size_bytes for o in found)
    if as_json:
        click.echo(json.dumps({"removed": not dry_run, "orphans": [o.to_dict() for o in found]}, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    for orphan in found:
        click.echo(f"{verb} {orphan.path} ({orphan.reason}, {kib(orphan.size_bytes)})")
    click.echo(f"{verb} {len(found)} folder{'' if len(found) == 1 else 's'}, {kib(total)}")
