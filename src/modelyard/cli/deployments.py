"""`modelyard deployments create|list|show|delete`: deployments on a running `modelyard server`.

A thin layer over the control plane's REST API through ``ServerClient`` (the same URL and
token conventions as `modelyard jobs`: --url / $MODELYARD_SERVER_URL, default
http://127.0.0.1:8080, and --token / $MODELYARD_TOKEN); a server error is printed as the
server's own one-line message with the exit code of its error class.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from modelyard.cli._client import server_options
from modelyard.cli._fmt import console, fmt
from modelyard.cli._nouns import NounGroup
from modelyard.cli._options import config_option, given

# Requests may take long: a delete waits for the replicas to drain.
_server = server_options(timeout_s=120.0)
DEPLOYMENT = "modelyard.server.deployments.request:DeploymentRequest"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _replicas(d: dict[str, Any]) -> str:
    """Running replicas of the count asked for, or of Ray Serve's autoscaling range (engine ray)."""
    ready = sum(1 for r in d["replicas"] if r["state"] == "running")
    low, high = d.get("replica_range") or (d["replica_count"], d["replica_count"])
    return f"{ready}/{low}" if low == high else f"{ready} ({low}-{high})"


def _print(deployment: dict[str, Any]) -> None:
    out = console()
    m = deployment["metrics"]
    out.print(
        f"[bold]{deployment['name']}[/bold]  {deployment['model']}  {deployment['status']}  "
        f"engine={deployment.get('engine', 'local')}  replicas={_replicas(deployment)}  "
        f"restarts={deployment['restarts']}  {fmt(m['requests_per_s'])} req/s  "
        f"p50={_ms(m['p50_ms'])}  p99={_ms(m['p99_ms'])}"
    )
    if deployment.get("error"):
        out.print(f"error: {deployment['error']}")
    table = Table(show_header=True, header_style="bold")
    for col in ("replica", "state", "pid", "port", "restarts", "error"):
        table.add_column(col)
    for r in deployment["replicas"]:
        table.add_row(str(r["index"]), r["state"], fmt(r["pid"]), fmt(r["port"]), str(r["restarts"]), r["error"] or "")
    out.print(table)
    out.print(f"predict: POST {deployment['endpoint']}")


@click.group(cls=NounGroup)
def deployments() -> None:
    """Serve model versions on supervised processes of a running `modelyard server`."""


@deployments.command("create")
@click.argument("name")
@click.argument("model_ref")
@config_option("--replicas", model=DEPLOYMENT, type=int, help="Serving processes (engine ray: Ray Serve replicas).")
@config_option(
    "--engine",
    model=DEPLOYMENT,
    type=click.Choice(["local", "ray"]),
    help="local: supervised `modelyard serve` processes; ray: a Ray Serve application (modelyard[ray]).",
)
@config_option("--num-cpus", model=DEPLOYMENT, type=float, help="engine ray: CPUs per replica (fractions allowed).")
@config_option("--min-replicas", model=DEPLOYMENT, type=int, help="engine ray: autoscaling floor.")
@config_option("--max-replicas", model=DEPLOYMENT, type=int, help="engine ray: autoscaling ceiling.")
@config_option(
    "--target-ongoing-requests",
    model=DEPLOYMENT,
    type=float,
    help="engine ray: ongoing requests per replica to aim at.",
)
@config_option("--max-batch-size", model=DEPLOYMENT, type=int, help="Most instances coalesced into one forward pass.")
@config_option(
    "--max-wait-ms", model=DEPLOYMENT, type=float, help="Longest a request waits for others to join its batch."
)
@config_option("--backend", model=DEPLOYMENT, type=click.Choice(["auto", "torch", "onnx"]))
@config_option(
    "--monitor-sample",
    model=DEPLOYMENT,
    type=float,
    help="Share of predict requests each replica logs for monitoring, 0 to 1 (0: off; docs/monitoring.md).",
)
@config_option("--monitor-window", model=DEPLOYMENT, type=int, help="Instances per monitoring check.")
@config_option("--monitor-capacity", model=DEPLOYMENT, type=int, help="Instances each replica's request log keeps.")
@click.option("--json", "as_json", is_flag=True)
@_server
def create(
    api: Any,
    name: str,
    model_ref: str,
    replicas: int | None,
    engine: str | None,
    num_cpus: float | None,
    min_replicas: int | None,
    max_replicas: int | None,
    target_ongoing_requests: float | None,
    max_batch_size: int | None,
    max_wait_ms: float | None,
    backend: str | None,
    monitor_sample: float | None,
    monitor_window: int | None,
    monitor_capacity: int | None,
    as_json: bool,
) -> None:
    """Deploy MODEL_REF (name:N) as NAME; predictions at /v1/deployments/NAME/predict."""
    # Options left out are left to the server (DeploymentRequest holds the defaults).
    body = {"name": name, "model": model_ref} | given(
        replicas=replicas,
        engine=engine,
        num_cpus=num_cpus,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_ongoing_requests=target_ongoing_requests,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        backend=backend,
        monitor_sample=monitor_sample,
        monitor_window=monitor_window,
        monitor_capacity=monitor_capacity,
    )
    found = api.request("POST", "/v1/deployments", json=body).json()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _print(found)


@deployments.command("list")
@click.option("--json", "as_json", is_flag=True)
@_server
def list_cmd(api: Any, as_json: bool) -> None:
    """Every deployment with status, replicas and traffic."""
    found = api.request("GET", "/v1/deployments").json()["deployments"]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "model", "engine", "status", "replicas", "req/s", "p50", "p99", "restarts"):
        table.add_column(col)
    for d in found:
        m = d["metrics"]
        table.add_row(
            d["name"],
            d["model"],
            d.get("engine", "local"),
            d["status"],
            _replicas(d),
            fmt(m["requests_per_s"]),
            _ms(m["p50_ms"]),
            _ms(m["p99_ms"]),
            str(d["restarts"]),
        )
    console().print(table)


@deployments.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@_server
def show(api: Any, name: str, as_json: bool) -> None:
    """One deployment: replicas (pid, port, restarts), request rate, p50/p99 latency."""
    found = api.request("GET", f"/v1/deployments/{quote(name, safe='')}").json()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _print(found)


@deployments.command("delete")
@click.argument("name")
@_server
def delete(api: Any, name: str) -> None:
    """Stop the replicas (SIGTERM, then SIGKILL after 10 s) and remove the deployment."""
    api.request("DELETE", f"/v1/deployments/{quote(name, safe='')}")
    click.echo(f"deleted deployment {name}")
