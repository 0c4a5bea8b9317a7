"""`modelyard models [list]` and `modelyard models show NAME[:N|@ALIAS]` (alias, delete, gc, card: model_aliases.py, model_delete.py, model_card.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from modelyard.cli._fmt import console, fmt, kib, metrics_table
from modelyard.cli._nouns import NounGroup

if TYPE_CHECKING:
    from modelyard.store import ModelStore, ModelVersion


@click.group(cls=NounGroup)
def models() -> None:
    """Registered model versions: list (the default), show, card, delete, alias, gc."""


@models.command("list")
@click.option("--name", metavar="NAME", help="Only versions of this model.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_versions(obj: dict, name: str | None, as_json: bool) -> None:
    """List registered model versions (also: `modelyard models`)."""
    from modelyard.store import ModelStore

    versions = ModelStore(obj["home"]).list(name=name)
    refs, names = {v.ref for v in versions}, {v.name for v in versions}
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "ref": v.ref,
                        "kind": v.kind,
                        "parent": v.parent,
                        "aliases": list(v.aliases),
                        "task": v.task,
                        "run_id": v.run_id,
                        "created_at": str(v.created_at),
                        "size_bytes": v.size_bytes,
                        "test": (v.metrics or {}).get("test"),
                    }
                    for v in versions
                ],
                indent=2,
                default=str,
            )
        )
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("model", "kind", "parent", "aliases", "task", "run", "created", "size", "test metric"):
        table.add_column(col)
    for v in versions:
        test = (v.metrics or {}).get("test", {})
        key = next((k for k in ("accuracy", "r2", "mse", "loss") if k in test), None)
        # The listing holds every version of a name it shows, so a parent of that name missing here is deleted.
        gone = v.parent is not None and v.parent.partition(":")[0] in names and v.parent not in refs
        table.add_row(
            v.ref,
            v.kind,
            f"{v.parent} (deleted)" if gone else v.parent or "-",
            ", ".join(v.aliases) or "-",
            v.task or "-",
            v.run_id or "-",
            str(v.created_at)[:19],
            kib(v.size_bytes),
            f"{key}={fmt(test[key])}" if key else "-",
        )
    console().print(table)


@models.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj: dict, ref: str, as_json: bool) -> None:
    """Show a model version: input schema, layers, lineage and metrics."""
    from modelyard.store import ModelStore
    from modelyard.store.refs import parse_ref
    from modelyard.version_summary import show as summary_of

    store = ModelStore(obj["home"])
    version, rule = store.resolve(ref)
    summary = summary_of(version)  # stored at registration: no torch (docs/cli.md)
    info = {
        "model": version.ref,
        **_registry_facts(store, version, rule),
        **summary["schema"],
        "run_id": version.run_id,
        "created_at": str(version.created_at),
        "parameters": summary["parameters"],
        "size_bytes": version.size_bytes,
        "lineage": version.lineage,
        "test": (version.metrics or {}).get("test"),
        "privacy": (version.metrics or {}).get("privacy"),  # train.privacy: the epsilon the run spent
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    out = console()
    out.print(
        f"[bold]{version.ref}[/bold]  {info['task']}  run={info['run_id'] or '-'}  params={info['parameters']:,}  "
        f"size={kib(info['size_bytes'])}"
    )
    if not parse_ref(ref).version:
        out.print(f"{ref.strip()} → {version.ref} ({_rule_words(rule, version.name)})")
    parent = (
        f", derived from {info['parent']}{' (deleted)' if info['parent_deleted'] else ''}" if info["parent"] else ""
    )
    out.print(f"kind: {info['kind']}{parent}; aliases: {', '.join(info['aliases']) or 'none'}")
    trained_on = (info["lineage"] or {}).get("dataset")
    if trained_on:
        kanon = trained_on.get("k_anonymity") or {}
        sha = str(trained_on.get("sha256") or "")[:12]
        how = f" ({trained_on.get('operation')}d, k = {kanon['k_achieved']})" if kanon.get("k_achieved") else ""
        how = how or (f" ({trained_on.get('operation')}ed, sha256 {sha})" if sha else "")
        out.print(f"trained on dataset {trained_on.get('ref')}{how}")
    if info["derived"]:
        out.print("derived versions: " + ", ".join(f"{d['model']} ({d['kind']})" for d in info["derived"]))
    out.print(f"input shape {info['input_shape']} ({info['input_dtype']}), output shape {info['output_shape']}")
    if info["privacy"]:
        out.print(privacy_line(info["privacy"]))
    if info["class_names"]:
        out.print("classes: " + ", ".join(map(str, info["class_names"])))
    layers = Table(show_header=True, header_style="bold", title="layers")
    rows = summary["layers"]
    for col in rows[0].keys() if rows else []:
        layers.add_column(str(col))
    for row in rows:
        layers.add_row(*[fmt(v) for v in row.values()])
    out.print(layers)
    if info["test"]:
        out.print(metrics_table({k: v for k, v in info["test"].items() if k != "split"}, title="test metrics"))


def privacy_line(p: dict[str, Any]) -> str:
    """One line of a differentially private version's guarantee (the fields of training/privacy's report,
    or of federated/dp's for client-level DP)."""
    if p.get("level") == "client":
        return (
            f"privacy: client-level ({fmt(p.get('epsilon'))}, {p.get('delta')})-differential privacy, "
            f"{p.get('mechanism')}; target epsilon {fmt(p.get('target_epsilon'))}, noise multiplier "
            f"{fmt(p.get('noise_multiplier'))}, max_update_norm {fmt(p.get('max_update_norm'))}, {p.get('rounds')} "
            f"rounds at client sampling rate {fmt(p.get('sample_rate'))} ({p.get('accountant')} accountant)"
        )
    return (
        f"privacy: ({fmt(p.get('epsilon'))}, {p.get('delta')})-differential privacy, {p.get('mechanism', 'DP-SGD')}; "
        f"target epsilon {fmt(p.get('target_epsilon'))}, noise multiplier {fmt(p.get('noise_multiplier'))}, "
        f"max_grad_norm {fmt(p.get('max_grad_norm'))}, {p.get('clipping')} clipping, {p.get('steps')} steps "
        f"Poisson-sampled at rate {fmt(p.get('sample_rate'))} ({p.get('accountant')} accountant)"
    )


def _registry_facts(store: ModelStore, version: ModelVersion, rule: str) -> dict[str, Any]:
    """What the registry knows of a version: kind, lineage both ways, aliases, the rule that picked it."""
    return {**store.family(version), "aliases": list(version.aliases), "resolved_by": rule}


def _rule_words(rule: str, name: str) -> str:
    """The rule in words, with how to choose otherwise when it was the bare-name fallback."""
    if rule.startswith("alias") or rule.startswith("explicit"):
        return f"by {rule}"
    return f"the {rule}; `modelyard models alias set {name}:N production` picks one"
