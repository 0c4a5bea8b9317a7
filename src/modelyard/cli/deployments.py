"""`modelyard deployments create|list|show|delete`: deployments on a running `modelyard server`.

A thin layer over the control plane's REST API through ``ServerClient`` (the same URL and
token conventions as `modelyard jobs`: --url / $MODELYARD_SERVER_URL, default
http://127.0.0.1:8080, and --token / $MODELYARD_TOKEN); a server error is printed as the
server's own one-line message with the exit code of its error class.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from modelyard.cli._fmt import console, fmt


def _server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    @click.option(
        "--url",
        envvar="MODELYARD_SERVER_URL",
        default="http://127.0.0.1:8080",
        show_default=True,
        help="The control plane (env MODELYARD_SERVER_URL).",
    )
    @click.option("--token", envvar="MODELYARD_TOKEN", default=None, help="Bearer token (env MODELYARD_TOKEN).")
    @functools.wraps(func)
    def wrapper(*args: Any, url: str, token: str | None, **kwargs: Any) -> Any:
        from modelyard.errors import optional_dependency

        with optional_dependency("serve", "The control plane client"):
            from modelyard.server.client import ServerClient

        with ServerClient(url, token, timeout=120.0) as api:  # a delete waits for replicas to drain
            return func(api, *args, **kwargs)

    return wrapper


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _print(deployment: dict[str, Any]) -> None:
    out = console()
    m = deployment["metrics"]
    out.print(
        f"[bold]{deployment['name']}[/bold]  {deployment['model']}  {deployment['status']}  "
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


@click.group()
def deployments() -> None:
    """Serve model versions on supervised processes of a running `modelyard server`."""


@deployments.command("create")
@click.argument("name")
@click.argument("model_ref")
@click.option("--replicas", default=1, show_default=True, type=int, help="Serving processes.")
@click.option("--max-batch-size", default=64, show_default=True, type=int)
@click.option("--max-wait-ms", default=2.0, show_default=True, type=float)
@click.option("--backend", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_server_options
def create(
    api: Any,
    name: str,
    model_ref: str,
    replicas: int,
    max_batch_size: int,
    max_wait_ms: float,
    backend: str,
    as_json: bool,
) -> None:
    """Deploy MODEL_REF (name:N) as NAME; predictions at /v1/deployments/NAME/predict."""
    body = {
        "name": name,
        "model": model_ref,
        "replicas": replicas,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "backend": backend,
    }
    found = api.request("POST", "/v1/deployments", json=body).json()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _print(found)


@deployments.command("list")
@click.option("--json", "as_json", is_flag=True)
@_server_options
def list_cmd(api: Any, as_json: bool) -> None:
    """Every deployment with status, replicas and traffic."""
    found = api.request("GET", "/v1/deployments").json()["deployments"]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "model", "status", "replicas", "req/s", "p50", "p99", "restarts"):
        table.add_column(col)
    for d in found:
        ready = sum(1 for r in d["replicas"] if r["state"] == "running")
        m = d["metrics"]
        table.add_row(
            d["name"],
            d["model"],
            d["status"],
            f"{ready}/{d['replica_count']}",
            fmt(m["requests_per_s"]),
            _ms(m["p50_ms"]),
            _ms(m["p99_ms"]),
            str(d["restarts"]),
        )
    console().print(table)


@deployments.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@_server_options
def show(api: Any, name: str, as_json: bool) -> None:
    """One deployment: replicas (pid, port, restarts), request rate, p50/p99 latency."""
    found = api.request("GET", f"/v1/deployments/{quote(name, safe='')}").json()
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        _print(found)


@deployments.command("delete")
@click.argument("name")
@_server_options
def delete(api: Any, name: str) -> None:
    """Stop the replicas (SIGTERM, then SIGKILL after 10 s) and remove the deployment."""
    api.request("DELETE", f"/v1/deployments/{quote(name, safe='')}")
    click.echo(f"deleted deployment {name}")
