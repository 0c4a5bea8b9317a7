"""`modelyard explain NAME[:N] INPUT` (or `--text "..."`): which input features drove the model's output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from modelyard.cli._fmt import console, fmt
from modelyard.cli._options import Names

# explaining.METHODS' names and aliases, written here so --help does not import torch (a test holds them equal)
METHODS = Names(
    ("integrated_gradients", "saliency", "shap", "lime"),
    {
        "ig": "integrated_gradients",
        "integrated_gradient": "integrated_gradients",
        "integratedgradients": "integrated_gradients",
        "gradient": "saliency",
        "gradients": "saliency",
        "vanilla_gradient": "saliency",
        "kernel_shap": "shap",
        "kernelshap": "shap",
        "shapley": "shap",
        "lime_tabular": "lime",
    },
)

_SHOWN = 20  # instances summarized on screen; --json has them all


@click.command()
@click.argument("ref")
@click.argument("file", metavar="INPUT", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--text",
    "texts",
    multiple=True,
    metavar="SENTENCE",
    help="A text instance for a text model (repeat for several); instead of INPUT.",
)
@click.option(
    "--method",
    "-m",
    default="integrated_gradients",
    show_default=True,
    type=METHODS,
    help="Attribution method (ig: integrated_gradients; shap and lime: tabular models).",
)
@click.option(
    "--target",
    default=None,
    metavar="CLASS",
    help="Output to explain: a class name or output index. Default: the predicted class.",
)
@click.option("--top", default=10, show_default=True, type=int, help="Features listed per instance (tabular models).")
@click.option("--steps", default=50, show_default=True, type=int, help="Integration points for integrated gradients.")
@click.option(
    "--heatmap",
    default=None,
    metavar="OUT.png",
    type=click.Path(dir_okay=False),
    help="Write the attribution heatmap (image models); several inputs give OUT-0.png, OUT-1.png, ...",
)
@click.option("--scale", default=8, show_default=True, type=int, help="Heatmap enlargement (pixels per input pixel).")
@click.option("--json", "as_json", is_flag=True, help="Print the full explanation as JSON.")
@click.pass_obj
def explain(
    obj: dict,
    ref: str,
    file: str | None,
    texts: tuple[str, ...],
    method: str,
    target: str | None,
    top: int,
    steps: int,
    heatmap: str | None,
    scale: int,
    as_json: bool,
) -> None:
    """Explain a model version's outputs on INPUT (JSON, CSV, NPY or a PNG/JPEG image) or on --text."""
    from modelyard.errors import SpecError, UsageError
    from modelyard.explaining import Explainer
    from modelyard.inputs import read_inputs

    explainer = Explainer.load(ref, home=obj["home"])
    p = explainer.predictor
    if heatmap is not None and explainer.image is None:
        raise SpecError(
            f"Invalid option `--heatmap`: model {p.ref} does not take images; heatmaps are drawn for "
            f"image models (tabular models list their top features)",
            field="--heatmap",
        )
    if (file is None) == (not texts):
        raise UsageError(
            "Invalid arguments: expected an INPUT file or --text, received " + ("both" if texts else "neither"),
            field="INPUT",
        )
    if texts and not explainer.text:
        raise SpecError(
            f"Invalid option `--text`: model {p.ref} does not take text; its input is {p.input_shape}, "
            "pass an INPUT file",
            field="--text",
        )
    x = list(texts) if texts else read_inputs(file, p.input_shape, p.meta.get("feature_names"))
    result = explainer.explain(x, method=method, target=target, steps=steps, top=top)
    written = _write_heatmaps(result, heatmap, scale) if heatmap is not None else []
    if as_json:
        click.echo(json.dumps({**result.to_dict(heatmaps=False), "heatmaps": [str(w) for w in written]}))
        return
    _summary(result, written)


def _highlighted(item: dict[str, Any]) -> str:
    """The input text with each token's characters colored: green raised the explained output,
    red lowered it, brighter the larger |attribution| (relative to the instance's largest)."""
    text, pieces = item["text"], [p for p in item["tokens"] if not p["special"]]
    scale = max((abs(p["attribution"]) for p in pieces), default=0.0) or 1.0
    parts, at = ["    "], 0
    for piece in pieces:
        parts.append(escape(text[at : piece["start"]]))
        strength = abs(piece["attribution"]) / scale
        style = ("bold " if strength > 0.5 else "") + ("green" if piece["attribution"] >= 0 else "red")
        parts.append(
            f"[{style}]{escape(text[piece['start'] : piece['end']])}[/]"
            if strength > 0.1
            else escape(text[piece["start"] : piece["end"]])
        )
        at = max(at, piece["end"])
    parts.append(escape(text[at:]))
    return "".join(parts)


def _write_heatmaps(result: Any, out: str, scale: int) -> list[Path]:
    path = Path(out)
    if len(result) == 1:
        return [result.save_heatmap(path, scale=scale)]
    return [
        result.save_heatmap(path.with_name(f"{path.stem}-{i}{path.suffix or '.png'}"), i, scale=scale)
        for i in range(len(result))
    ]


def _summary(result: Any, written: list[Path]) -> None:
    out = console()
    what = "probability of" if result.task == "classification" else "output"
    out.print(f"[bold]{result.model}[/bold]  {result.method}: {result.details.get('summary', '')}")
    if result.details.get("note"):
        out.print(result.details["note"], markup=False)
    for i in range(min(len(result), _SHOWN)):
        item = result.instance(i, heatmap=False)
        line = (
            f"#{i}  {what} {item['label']!s}: {fmt(item['output'])}  sum of attributions {fmt(item['attribution_sum'])}"
        )
        if "baseline_output" in item:
            line += f"  (baseline {fmt(item['baseline_output'])})"
        if "convergence_delta" in item:
            line += f"  convergence delta {item['convergence_delta']:.2e}"
        if "score" in item:
            line += f"  local fit R² {fmt(item['score'])}"
        out.print(line)
        if "tokens" in item:
            out.print(_highlighted(item), highlight=False)
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            for col, justify in (("token", "left"), ("chars", "right"), ("attribution", "right")):
                table.add_column(col, justify=justify)  # type: ignore[arg-type]
            for piece in item["tokens"]:
                chars = "" if piece["special"] else f"{piece['start']}-{piece['end']}"
                table.add_row(escape(piece["token"]), chars, f"{piece['attribution']:+.4g}")
            out.print(table)
        elif "top_features" in item:
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            for col, justify in (("feature", "left"), ("value", "right"), ("contribution", "right")):
                table.add_column(col, justify=justify)  # type: ignore[arg-type]
            for row in item["top_features"]:
                table.add_row(row["feature"], fmt(row["value"]), f"{row['contribution']:+.4g}")
            out.print(table)
        elif i < len(written):
            out.print(f"    heatmap: {written[i]} (red raised the output, blue lowered it)")
    if len(result) > _SHOWN:
        out.print(f"... {len(result) - _SHOWN} more instances (use --json for all of them)")
    if result.image is not None and not written:
        out.print("add --heatmap OUT.png to draw where the image mattered")
