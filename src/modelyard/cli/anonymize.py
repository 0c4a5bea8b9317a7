"""`modelyard anonymize CONFIG INPUT [--name NAME]` (the stored datasets' commands are in datasets.py)."""

from __future__ import annotations

import json
from typing import Any

import click

from modelyard.cli._fmt import console


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
    print_report(report)


def print_report(report: dict[str, Any]) -> None:
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
