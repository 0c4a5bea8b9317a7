"""`modelyard models [list]` and `modelyard models show NAME[:N]`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from modelyard.cli._fmt import console, fmt, metrics_table
from modelyard.cli._nouns import NounGroup


@click.group(cls=NounGroup)
def models() -> None:
    """Registered model versions: list (the default), show."""


@models.command("list")
@click.option("--name", metavar="NAME", help="Only versions of this model.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_versions(obj: dict, name: str | None, as_json: bool) -> None:
    """List registered model versions (also: `modelyard models`)."""
    from modelyard.store import ModelStore

    versions = ModelStore(obj["home"]).list(name=name)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "ref": v.ref,
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
    for col in ("model", "task", "run", "created", "size", "test metric"):
        table.add_column(col)
    for v in versions:
        test = (v.metrics or {}).get("test", {})
        key = next((k for k in ("accuracy", "r2", "mse", "loss") if k in test), None)
        table.add_row(
            v.ref,
            v.task or "-",
            v.run_id or "-",
            str(v.created_at)[:19],
            f"{v.size_bytes / 1024:.0f} KiB",
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
    from modelyard.version_summary import show as summary_of

    version = ModelStore(obj["home"]).get(ref)
    summary = summary_of(version)  # stored at registration: no torch (docs/cli.md)
    info = {
        "model": version.ref,
        **summary["schema"],
        "run_id": version.run_id,
        "created_at": str(version.created_at),
        "parameters": summary["parameters"],
        "size_bytes": version.size_bytes,
        "lineage": version.lineage,
        "test": (version.metrics or {}).get("test"),
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    out = console()
    out.print(
        f"[bold]{version.ref}[/bold]  {info['task']}  run={info['run_id'] or '-'}  params={info['parameters']:,}  "
        f"size={info['size_bytes'] / 1024:.0f} KiB"
    )
    out.print(f"input shape {info['input_shape']} ({info['input_dtype']}), output shape {info['output_shape']}")
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
