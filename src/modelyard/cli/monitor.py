"""`modelyard monitor NAME[:N]`: the monitoring checks of a served version (docs/monitoring.md).

Asks ``GET /v1/models/NAME[/versions/N]/monitor?window=W`` of the `modelyard serve` at ``--url``
(or, with ``--deployment``, ``GET /v1/deployments/NAME/monitor`` of the control plane) and prints
the window's data-quality checks, per-feature drift, output shift and live accuracy; ``--json``
prints the server's report unchanged. Errors are the server's own one line (an unknown model, a
window larger than the log), or one line saying no server answers at the URL.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from modelyard.cli._client import server_options
from modelyard.cli._fmt import console, fmt

__all__ = ["monitor", "monitor_path"]

_SHOWN_FEATURES = 10  # the most drifted features listed in the table (--json has every one)


def monitor_path(target: str, deployment: bool) -> str:
    """The monitor route of ``target``: a deployment's, or ``NAME[:N]``'s on a `modelyard serve`."""
    if deployment:
        return f"/v1/deployments/{quote(target, safe='')}/monitor"
    from modelyard.store.refs import parse_ref

    ref = parse_ref(target)
    if ref.alias is not None:
        raise click.BadParameter(
            f"expected NAME or NAME:N (the version served), received {target!r}", param_hint="'NAME[:N]'"
        )
    name = quote(ref.name, safe="")
    return f"/v1/models/{name}/monitor" if ref.version is None else f"/v1/models/{name}/versions/{ref.version}/monitor"


def _yes(flag: bool) -> str:
    return "ALERT" if flag else "ok"


def _print(report: dict[str, Any]) -> None:
    out = console()
    alerts = report["alerts"]
    out.print(
        f"[bold]{report['ref']}[/bold]  window={report['window']}  logged={report['logged']}  "
        f"sample={fmt(report['sample'])}  p50={fmt(report['latency_s']['p50'] * 1000)} ms  "
        f"p95={fmt(report['latency_s']['p95'] * 1000)} ms  "
        + (f"[bold red]{len(alerts)} alert(s)[/bold red]" if alerts else "no alerts")
    )
    checks = Table(show_header=True, header_style="bold")
    for col in ("check", "state", "value"):
        checks.add_column(col)
    if not report["schema"]["ok"]:
        schema = report["schema"]
        checks.add_row(
            "schema",
            "ALERT",
            f"features {schema['received_features']} (expected {schema['expected_features']}), "
            f"outputs {schema['received_outputs']} (expected {schema['expected_outputs']})",
        )
    else:
        quality, features, outputs = report["quality"], report["features"], report["outputs"]
        checks.add_row(
            "schema", "ok", f"{report['schema']['features']} features, {report['schema']['outputs']} outputs"
        )
        checks.add_row("missing (NaN)", _yes(bool(quality["missing_features"])), fmt(quality["missing_rate"]))
        checks.add_row("out of range", _yes(quality["out_of_range_rate"] > 0.05), fmt(quality["out_of_range_rate"]))
        checks.add_row(
            f"feature drift ({features['test']}, {features['correction']})",
            _yes(features["drift"]),
            f"{len(features['drifted_features'])} of {len(features['per_feature'])} drifted; max PSI "
            f"{fmt(features['max_psi'])}",
        )
        checks.add_row(
            f"output shift ({outputs['test']}, {outputs['correction']})",
            _yes(outputs["drift"]),
            f"p = {fmt(outputs['p_value'])}",
        )
    accuracy = report["accuracy"]
    checks.add_row("live accuracy", "-", f"{fmt(accuracy['accuracy'])} ({accuracy['labelled']} labelled)")
    out.print(checks)
    if report["schema"]["ok"] and report["features"]["drifted_features"]:
        out.print(_drifted_table(report["features"]))
    for line in alerts:
        out.print(f"alert: {line}")


def _drifted_table(features: dict[str, Any]) -> Table:
    rows = sorted(features["per_feature"], key=lambda row: row["ks_p_holm"])[:_SHOWN_FEATURES]
    table = Table(title="most drifted features", show_header=True, header_style="bold")
    for col in ("feature", "KS p (Holm)", "chi2 p", "PSI", "Wasserstein"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(
            str(row["feature"]), fmt(row["ks_p_holm"]), fmt(row["chi2_p"]), fmt(row["psi"]), fmt(row["wasserstein"])
        )
    return table


@click.command()
@click.argument("target", metavar="NAME[:N]")
@click.option("--deployment", is_flag=True, help="NAME is a deployment of the control plane at --url.")
@click.option(
    "--window",
    type=click.IntRange(min=2),
    default=None,
    help="Check the last N logged instances (default: the server's --monitor-window).",
)
@click.option("--json", "as_json", is_flag=True, help="The server's report as JSON, in full.")
@server_options()
def monitor(api: Any, target: str, deployment: bool, window: int | None, as_json: bool) -> None:
    """Data quality, feature drift, output shift and live accuracy of a served version.

    --url is the `modelyard serve` (started with --monitor-sample) that serves NAME[:N], e.g.
    http://127.0.0.1:8000; with --deployment, the control plane and NAME a deployment.
    """
    params = {} if window is None else {"window": window}
    report = api.request("GET", monitor_path(target, deployment), params=params).json()
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report)
