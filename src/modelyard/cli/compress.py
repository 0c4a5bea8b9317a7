"""`modelyard compress NAME[:N] --quantize int8 | --prune FRACTION | --distill STUDENT_SPEC`."""

from __future__ import annotations

import json
import sys

import click

from modelyard.cli._fmt import console


@click.command()
@click.argument("ref")
@click.option(
    "--quantize",
    type=click.Choice(["int8"]),
    help="Quantize to int8: dynamic for dense networks, static (calibrated) with convolutions.",
)
@click.option(
    "--prune", "prune", type=float, metavar="FRACTION", help="Prune this fraction (0-1) of the weights by magnitude."
)
@click.option(
    "--structured", is_flag=True, help="With --prune: remove whole neurons/channels (the model gets smaller)."
)
@click.option(
    "--finetune",
    type=int,
    metavar="EPOCHS",
    default=None,
    help="With --prune: epochs of fine-tuning afterwards (default 0).",
)
@click.option(
    "--distill",
    "student",
    type=click.Path(dir_okay=False),
    metavar="STUDENT_SPEC",
    help="Train the student spec's model on this model's soft targets.",
)
@click.option(
    "--temperature", type=float, metavar="T", default=None, help="With --distill: softmax temperature T (default 2)."
)
@click.option(
    "--alpha",
    type=float,
    metavar="A",
    default=None,
    help="With --distill: weight of the teacher term, 1 - alpha for the labels (default 0.5).",
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="With --distill: also train the student without a teacher, for comparison.",
)
@click.option("--name", default=None, metavar="NAME", help="Register under this name instead of the parent's.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar while training (default: on for a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def compress(
    obj: dict,
    ref: str,
    quantize: str | None,
    prune: float | None,
    structured: bool,
    finetune: int | None,
    student: str | None,
    temperature: float | None,
    alpha: float | None,
    baseline: bool,
    name: str | None,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Make a smaller or faster version of model REF and print it next to its parent."""
    from modelyard.compression.api import compress as run
    from modelyard.training.fast.allocator import keep_freed_memory

    keep_freed_memory()  # fine-tuning and distillation train: the same process-wide choice as `train`
    from modelyard.compression.report import rich_table

    result = run(
        ref,
        quantize=quantize,
        prune=prune,
        structured=structured,
        finetune=finetune or 0,
        distill=student,  # type: ignore[arg-type]
        temperature=temperature,
        alpha=alpha,  # type: ignore[arg-type]
        baseline=baseline,
        name=name,
        home=obj["home"],
        progress=sys.stderr.isatty() if progress is None else progress,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    out = console()
    out.print(rich_table(result.rows, title=f"{result.operation}: {result.parent_ref} → {result.model_ref}"))
    ratios = ", ".join(
        f"{k.replace('_b', ' b')} {v:.2f}x" for k, v in result.speedup.items() if not k.startswith("served")
    )
    out.print(f"speed-up per runtime (parent time / new time, same runtime): {ratios}")
    out.print(result.served())
    out.print(
        "latency: median ms per call, 1 thread; torch = Predictor.predict_tensor (modelyard.load), onnxruntime = "
        "the onnx serving backend on the ONNX graph; served = the runtime `modelyard serve --backend auto` picks"
    )
    out.print(f"registered model [bold]{result.model_ref}[/bold]")
