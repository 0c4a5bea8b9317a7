"""`modelyard eval NAME[:N]` and `modelyard predict NAME[:N] FILE`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from modelyard.cli._fmt import console, fmt, metrics_table


@click.command("eval")
@click.argument("ref")
@click.option(
    "--data",
    "data",
    default=None,
    metavar="SOURCE",
    help="Evaluate on this data instead of the model's own test split: a file or folder of the "
    "training format (csv, parquet, npz, image folder) or a built-in source name.",
)
@click.option(
    "--out-of-scope",
    "min_accuracy",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    metavar="ACCURACY",
    help="A CLINC150 model: also report out-of-scope recall on the 1,000 out-of-scope test queries at the "
    "max-softmax threshold chosen on the val split to keep in-scope accuracy at ACCURACY (e.g. 0.94).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_cmd(obj: dict, ref: str, data: str | None, min_accuracy: float | None, as_json: bool) -> None:
    """Evaluate a registered model version on its test split or on other data."""
    from modelyard.evaluation import evaluate_model

    metrics = evaluate_model(ref, data=data, home=obj["home"])
    if min_accuracy is not None:
        from modelyard.out_of_scope import out_of_scope_report
        from modelyard.predict import Predictor

        report = out_of_scope_report(Predictor.load(ref, home=obj["home"]), min_accuracy=min_accuracy)
        metrics.update({f"oos_{k}" if not k.startswith("oos") else k: v for k, v in report.items() if k != "model"})
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    out = console()
    out.print(
        metrics_table(
            {k: v for k, v in metrics.items() if k not in ("split", "model")},
            title=f"{metrics['model']} on {metrics['split']}",
        )
    )
    if "confusion_matrix" in metrics:
        out.print("confusion matrix (rows: true, columns: predicted):")
        for row in metrics["confusion_matrix"]:
            out.print("  " + " ".join(f"{int(v):5d}" for v in row))


@click.command()
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full predictions as JSON.")
@click.pass_obj
def predict(obj: dict, ref: str, file: str, as_json: bool) -> None:
    """Predict with a model version on FILE (JSON, CSV, NPY or a PNG/JPEG image)."""
    from modelyard.inputs import read_inputs
    from modelyard.predict import Predictor

    p = Predictor.load(ref, home=obj["home"])
    x = read_inputs(file, p.input_shape, p.meta.get("feature_names"))
    records = p.records(x)
    if as_json:
        click.echo(json.dumps({"model": p.ref, "predictions": records}))
        return
    table = Table(show_header=True, header_style="bold", title=f"{p.ref} predictions")
    table.add_column("#", justify="right")
    if p.task == "classification":
        table.add_column("label")
        table.add_column("probability", justify="right")
        for i, r in enumerate(records):
            table.add_row(str(i), str(r["label"]), fmt(max(r["probabilities"])))
    else:
        table.add_column("value")
        for i, r in enumerate(records):
            table.add_row(str(i), ", ".join(fmt(v) for v in r["value"]))
    console().print(table)
