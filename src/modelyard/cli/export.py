"""`modelyard export NAME[:N] --format onnx [--output PATH]`."""

from __future__ import annotations

import json

import click

from modelyard.cli._fmt import console


@click.command()
@click.argument("ref")
@click.option(  # the choices of compression.export.FORMATS, not imported here: it pulls in torch
    "--format", "fmt_name", default="onnx", show_default=True, type=click.Choice(["onnx"]), help="Export format."
)
@click.option("--output", default=None, type=click.Path(dir_okay=False), help="Also write the graph to this file.")
@click.option("--name", default=None, metavar="NAME", help="Register under this name instead of the parent's.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def export(obj: dict, ref: str, fmt_name: str, output: str | None, name: str | None, as_json: bool) -> None:
    """Export model REF (checked against torch) as a new version holding model.onnx."""
    from modelyard.compression.export import export as run

    result = run(ref, format=fmt_name, output=output, name=name, home=obj["home"])
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": result.model_ref,
                    "parent": result.parent_ref,
                    "path": str(result.path),
                    "output": str(result.output) if result.output else None,
                    "check": result.check,
                    "rows": [r.to_dict() for r in result.rows],
                }
            )
        )
        return
    out = console()
    if result.rows:
        from modelyard.compression.report import rich_table

        out.print(rich_table(result.rows, title=f"export: {result.parent_ref} → {result.model_ref}"))
        out.print(
            "latency: median ms per call, 1 thread; torch = Predictor.predict_tensor, onnxruntime = the onnx "
            "serving backend on the exported graph"
        )
    check = ", ".join(f"{k} {v:.3g}" for k, v in result.check.items())
    out.print(f"exported {result.parent_ref} to ONNX ({check}) as model [bold]{result.model_ref}[/bold]")
    if result.output is not None:
        out.print(f"wrote {result.output}")
