"""`modelyard pipelines [list] | show NAME[:N] | register SPEC [--name NAME]`: voice pipelines (docs/voice.md)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from modelyard.cli._fmt import console
from modelyard.cli._nouns import NounGroup


@click.group(cls=NounGroup)
def pipelines() -> None:
    """Registered pipelines (speech to text → intent → answer → speech): list (the default), show, register."""


@pipelines.command("register")
@click.argument("spec_file", metavar="SPEC", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, metavar="NAME", help="The pipeline's name (else the spec's `name`).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored version as JSON.")
@click.pass_obj
def register(obj: dict, spec_file: str, name: str | None, as_json: bool) -> None:
    """Check a `kind: pipeline` SPEC against the store, build its language model and register it as NAME:k.

    The intent model's ref is pinned to the version it names now; `modelyard serve NAME` serves it.
    """
    from modelyard.voice.register import register_pipeline

    version = register_pipeline(spec_file, name=name, home=obj["home"])
    if as_json:
        click.echo(json.dumps({"pipeline": version.ref, **version.spec}, indent=2))
        return
    built = version.spec.get("built", {})
    lm = built.get("language_model") or {}
    detail = f", domain language model of {lm['sentences']} sentences, {lm['words']} words" if lm else ""
    console().print(f"registered pipeline [bold]{version.ref}[/bold]: intent model {built.get('intent_model')}{detail}")


@pipelines.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_pipelines(obj: dict, as_json: bool) -> None:
    """List registered pipelines (also: `modelyard pipelines`)."""
    from modelyard.store.pipelines import PipelineStore

    rows = []
    for version in PipelineStore(obj["home"]).list():
        stages = version.spec.get("stages", {})
        rows.append(
            {
                "pipeline": version.ref,
                "intent_model": stages.get("intent", {}).get("model"),
                "language_model": stages.get("speech_to_text", {}).get("language_model"),
                "voice": stages.get("speech", {}).get("voice"),
                "description": version.spec.get("description", ""),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("pipeline", "intent_model", "language_model", "voice", "description"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            *(str(row[c] or "") for c in ("pipeline", "intent_model", "language_model", "voice", "description"))
        )
    console().print(table)


@pipelines.command("show")
@click.argument("ref", metavar="NAME[:N]")
@click.pass_obj
def show(obj: dict, ref: str) -> None:
    """Print a pipeline version's resolved spec as JSON."""
    from modelyard.store.pipelines import PipelineStore

    version = PipelineStore(obj["home"]).get(ref)
    click.echo(json.dumps({"pipeline": version.ref, **version.spec}, indent=2))
