"""`modelyard federated start|list|show|join`: deployed federations on a running `modelyard server`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from modelyard.cli._client import server_options
from modelyard.cli._fmt import console
from modelyard.cli._nouns import NounGroup


@click.group(cls=NounGroup)
def federated() -> None:
    """Deployed federated learning: the aggregator on the server, each client a `join` process with its data."""


@federated.command("start")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a spec value (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the federation and its tokens as JSON.")
@server_options()
def start(api: Any, spec: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Start SPEC (with `federated: {mode: deployed}`) on the server; prints one join token per client, once."""
    from modelyard.cli.jobs import read_job_spec

    fed = api.request(
        "POST", "/v1/federations", json={"spec": read_job_spec(spec), "overrides": list(overrides)}
    ).json()
    if as_json:
        click.echo(json.dumps(fed, indent=2))
        return
    out = console()
    out.print(f"federation [bold]{fed['id']}[/bold] ({fed['name']}) started as job {fed['job_id']}")
    out.print(
        "join tokens (shown only now; each client runs `modelyard federated join URL --data FILE --token TOKEN`):"
    )
    for client in fed["tokens"]:
        click.echo(f"{client['name']} {client['token']}")


@federated.command("list")
@click.option("--json", "as_json", is_flag=True)
@server_options()
def list_cmd(api: Any, as_json: bool) -> None:
    """The server's federations, newest first."""
    feds = api.request("GET", "/v1/federations").json()["federations"]
    if as_json:
        click.echo(json.dumps(feds, indent=2))
        return
    for fed in feds:
        click.echo(_line(fed))


@federated.command("show")
@click.argument("federation")
@server_options()
def show(api: Any, federation: str) -> None:
    """One federation: its round, clients and job."""
    click.echo(_line(api.request("GET", f"/v1/federations/{federation}").json()))


def _line(fed: dict[str, Any]) -> str:
    state = fed["state"]
    parts = [
        fed["id"],
        fed["name"],
        f"status={state['status']}",
        f"round={state.get('round', 0)}/{state.get('rounds', '?')}",
    ]
    parts += [f"clients={len(fed['clients'])}", f"job={fed['job_id']}", f"run={fed['run_id']}"]
    if state.get("model_ref"):
        parts.append(f"model={state['model_ref']}")
    if state.get("message"):
        parts.append(f"({state['message']})")
    return "  ".join(parts)


@federated.command("join")
@click.argument("url")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="This client's data file (read here, never sent).",
)
@click.option(
    "--token",
    envvar="MODELYARD_FEDERATION_TOKEN",
    metavar="TOKEN",
    required=True,
    help="The client's join token (env MODELYARD_FEDERATION_TOKEN).",
)
@click.option(
    "--poll-s",
    type=click.FloatRange(0.05, 60),
    default=0.5,
    show_default=True,
    help="How often to ask for the next round.",
)
@click.option(
    "--patience-s",
    type=click.FloatRange(0, 86_400),
    default=120.0,
    show_default=True,
    help="How long to keep asking a server that does not answer.",
)
def join(url: str, data: Path, token: str, poll_s: float, patience_s: float) -> None:
    """Take part in the federation at URL as the client TOKEN names, until it ends."""
    from modelyard.federated.join import join as run_join
    from modelyard.training.fast.allocator import keep_freed_memory

    keep_freed_memory()  # this process trains, as `modelyard train` does
    run_join(url, token, data, poll_s=poll_s, patience_s=patience_s, say=click.echo)
