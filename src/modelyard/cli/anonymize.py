"""`modelyard anonymize CONFIG INPUT [--name NAME]` and `modelyard datasets [list] | show NAME[:N]`."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from modelyard.cli._fmt import console
from modelyard.cli._nouns import NounGroup


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--name", default=None, metavar="NAME", help="Store under this dataset name instead of the config's.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def anonymize(obj: dict, config: str, input_path: str, name: str | None, as_json: bool) -> None:
    """Anonymise the table INPUT (CSV or Parquet) by CONFIG and store it as a dataset (docs/privacy.md).

    The pseudonymisation key comes from the environment variable or key file the config names.
    """
    from modelyard.privacy.pipeline import anonymize as run

    result = run(config, input_path, name=name, home=obj["home"])
    if as_json:
        click.echo(json.dumps({"dataset": result.ref, "report": result.report, "lineage": result.lineage}, indent=2))
        return
    out = console()
    report = result.report
    out.print(f"stored dataset [bold]{result.ref}[/bold]: {report['rows_out']} of {report['rows_in']} rows")
    _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    out = console()
    if report.get("dropped"):
        out.print("dropped: " + ", ".join(report["dropped"]))
    for column, facts in (report.get("pseudonymized") or {}).items():
        out.print(f"pseudonymised {column}: {facts['values']} values, {facts['distinct']} distinct")
    for column, how in (report.get("generalized") or {}).items():
        out.print(f"generalised {column}: {how}")
    for column, counts in (report.get("redactions") or {}).items():
        out.print(f"redacted in {column}: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    kanon = report.get("k_anonymity")
    if kanon:
        l_part = f", l = {kanon['l_achieved']} (asked {kanon['l']}) on {kanon['sensitive']}" if "l" in kanon else ""
        out.print(
            f"k-anonymity over {', '.join(kanon['quasi_identifiers'])}: k = {kanon['k_achieved']} (asked {kanon['k']})"
            f"{l_part}; {kanon['classes']} classes, {kanon['suppressed_rows']} rows suppressed"
        )
        for column, how in kanon["generalization"].items():
            out.print(f"  {column}: {how}")


@click.group(cls=NounGroup)
def datasets() -> None:
    """Stored datasets (written by `modelyard anonymize`): list (the default), show."""


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_datasets(obj: dict, as_json: bool) -> None:
    """List stored datasets (also: `modelyard datasets`)."""
    from modelyard.store.datasets import DatasetStore

    rows = []
    for found in DatasetStore(obj["home"]).list():
        report, lineage = found.report, found.lineage
        kanon = report.get("k_anonymity") or {}
        rows.append(
            {
                "dataset": found.ref,
                "rows": report.get("rows_out"),
                "k": kanon.get("k_achieved"),
                "source": (lineage.get("source") or {}).get("file"),
                "created_at": lineage.get("created_at"),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("dataset", "rows", "k", "source", "created"):
        table.add_column(col)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row.values()))
    console().print(table)


@datasets.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj: dict, ref: str, as_json: bool) -> None:
    """Show a stored dataset: its report and lineage (source file sha256, steps; never a key)."""
    from modelyard.store.datasets import DatasetStore

    found = DatasetStore(obj["home"]).get(ref)
    info = {"dataset": found.ref, "path": str(found.path), "report": found.report, "lineage": found.lineage}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    out = console()
    source = info["lineage"].get("source") or {}
    out.print(f"[bold]{found.ref}[/bold]  {info['report'].get('rows_out')} rows  {found.path}")
    out.print(f"from {source.get('file')} (sha256 {source.get('sha256')}), {source.get('rows')} rows")
    out.print("steps: " + ", ".join(str(s.get("type")) for s in info["lineage"].get("steps", [])))
    _print_report(info["report"])
