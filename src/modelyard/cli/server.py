"""`modelyard server`: the control plane (REST API, web console, training workers) on one port,
and `modelyard server token list|create|delete` for its API tokens."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from modelyard.cli._fmt import console
from modelyard.cli._nouns import NounGroup
from modelyard.cli._options import config_option
from modelyard.cli.serve import header_timeout_option

SERVER = "modelyard.server.config:ServerConfig"


@click.group(invoke_without_command=True)
@config_option(
    "--host",
    model=SERVER,
    metavar="ADDRESS",
    help="Address to listen on. Anything but loopback requires tokens (an admin token is made on first start).",
)
@config_option("--port", model=SERVER, type=int)
@config_option("--workers", model=SERVER, type=int, help="Training worker processes (0: API only).")
@config_option(
    "--lease-s",
    model=SERVER,
    type=float,
    help="Seconds without a heartbeat before a running job is taken from its worker.",
)
@config_option("--heartbeat-s", model=SERVER, type=float, help="Seconds between worker heartbeats.")
@config_option(
    "--max-attempts",
    model=SERVER,
    type=int,
    help="Worker losses a job survives before it fails (per job: jobs submit --max-attempts).",
)
@config_option("--reap-interval-s", model=SERVER, type=float, help="Seconds between reaper passes.")
@config_option(
    "--ray-serve-port",
    model=SERVER,
    type=int,
    help="Port of Ray Serve's HTTP proxy on 127.0.0.1, for deployments with engine ray.",
)
@header_timeout_option(SERVER)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Another origin allowed to send writes (a console served elsewhere); repeatable.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Another Host header the server answers to (its DNS name behind a proxy); repeatable.",
)
@click.option(
    "--data-dir",
    "data_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="A folder jobs may read data files from (none by default: built-in data sets only); repeatable.",
)
@config_option(
    "--max-data-mb",
    model=SERVER,
    type=int,
    help="Largest data source (file, folder of images, unpacked archive) a job may read, in MB.",
)
@click.pass_context
def server(ctx: click.Context, **options: Any) -> None:
    """Run the control plane: jobs API, deployments, web console; blocks until Ctrl-C/SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from modelyard.server.config import ServerConfig
    from modelyard.server.run import serve

    options["allowed_origins"] = list(options["allowed_origins"])
    options["allowed_hosts"] = list(options["allowed_hosts"])
    options["data_dirs"] = list(options["data_dirs"])
    serve(ServerConfig.make(home=ctx.obj["home"], **options), echo=click.echo)


@server.group(cls=NounGroup)
def token() -> None:
    """API tokens: `read` (GET requests) or `admin` (everything). Stored hashed in the store."""


@token.command("create")
@click.option("--role", type=click.Choice(["read", "admin"]), required=True)
@click.option("--name", default=None, metavar="LABEL", help="A label to list and revoke it by.")
@click.pass_obj
def create(obj: dict, role: str, name: str | None) -> None:
    """Create a token and print it (once: only its hash is kept)."""
    from modelyard.server.auth.tokens import TokenStore

    info, secret = TokenStore(obj["home"]).create(role, name)
    click.echo(secret)
    click.echo(f"created {info.role} token {info.id} ({info.name}); it is not shown again", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_tokens(obj: dict, as_json: bool) -> None:
    """List tokens (ids, names, roles; never the tokens)."""
    from modelyard.server.auth.tokens import TokenStore

    found = [t.public() for t in TokenStore(obj["home"]).list()]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "name", "role", "created"):
        table.add_column(col)
    for t in found:
        table.add_row(t["id"], t["name"], t["role"], t["created_at"])
    console().print(table)


@token.command("delete")
@click.argument("token_id")
@click.pass_obj
def delete(obj: dict, token_id: str) -> None:
    """Delete (revoke) a token by id or name: a running server stops accepting it at once."""
    from modelyard.server.auth.tokens import TokenStore

    info = TokenStore(obj["home"]).revoke(token_id)
    click.echo(f"revoked {info.role} token {info.id} ({info.name})")
