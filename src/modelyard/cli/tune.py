"""`modelyard tune SPEC --search PATH=DIST ...`, `tune show STUDY`, `tune list`.

``modelyard tune SPEC ...`` is ``modelyard tune run SPEC ...`` (the noun's verbs ``list`` and
``show`` are found first); ``modelyard tune`` alone lists the studies. Optuna (the ``tune``
extra) is imported only inside these commands, so ``modelyard train`` never loads it.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from modelyard.cli._fmt import console, fmt
from modelyard.cli._options import Names

# tuning.strategies' names and aliases (a test holds them equal)
SAMPLERS = Names(("tpe", "random", "grid"))
PRUNERS = Names(("none", "median", "asha", "hyperband"), {"successive_halving": "asha", "sha": "asha", "nop": "none"})


class _TuneGroup(click.Group):
    """``tune SPEC`` runs a tune; ``tune list``/``tune show`` are the noun's verbs; ``tune`` alone lists."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:
            args = ["list"]
        elif args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_TuneGroup)
def tune() -> None:
    """Search a spec's values with Optuna (each trial a run), register the best; show stored studies."""


@tune.command("run")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--search",
    multiple=True,
    metavar="PATH=DIST",
    help="A spec path and its range: loguniform(a,b), uniform(a,b), int(a,b), choice(x,y,...) (repeatable).",
)
@click.option("--trials", type=int, default=None, help="Trials in the study (default: tune.trials, else 20).")
@click.option(
    "--metric",
    default=None,
    metavar="METRIC",
    help="Per-epoch metric to optimise (default: the early-stopping monitor).",
)
@click.option("--direction", type=click.Choice(["min", "max", "auto"]), default=None, help="Minimise or maximise.")
@click.option("--sampler", type=SAMPLERS, default=None, help="Optuna sampler (default tpe).")
@click.option("--pruner", type=PRUNERS, default=None, help="Pruner of unpromising trials (default median; sha: asha).")
@click.option("--seed", type=int, default=None, help="Seed of the sampler (default 0).")
@click.option("--study", default=None, metavar="NAME", help="Study name in the store (default: the spec's name).")
@click.option("--resume", is_flag=True, help="Continue the study of that name (SPEC may be left out).")
@click.option("--progress/--no-progress", default=None, help="Live progress bar per trial (default: off).")
@click.pass_obj
def run_cmd(
    obj: dict, spec: str | None, search: tuple[str, ...], resume: bool, progress: bool | None, **options: Any
) -> None:
    """Tune SPEC: run trials, prune the unpromising ones, register the best trial's model."""
    from modelyard.cli.train import sigterm_interrupts
    from modelyard.training.fast.allocator import keep_freed_memory
    from modelyard.tuning.api import tune as run_tune

    keep_freed_memory()
    _quiet_optuna()
    out = console()

    def on_trial(number: int, state: str, value: float | None) -> None:
        out.print(f"trial {number}: {state}" + ("" if value is None else f" {fmt(value)}"))

    with sigterm_interrupts():
        result = run_tune(
            spec,
            list(search),
            resume=resume,
            home=obj["home"],
            progress=bool(progress),
            console=out,
            on_trial=on_trial,
            **options,
        )
    _print_study(out, result.study, obj["home"])


@tune.command("show")
@click.argument("study")
@click.option("--json", "as_json", is_flag=True, help="Print the study as JSON.")
@click.pass_obj
def show_cmd(obj: dict, study: str, as_json: bool) -> None:
    """A study's trials, the best so far, its registered model and the parameters' importances."""
    if as_json:
        import json

        from modelyard.tuning.report import describe_study

        sys.stdout.write(json.dumps(describe_study(study, obj["home"]), indent=2, default=str) + "\n")
        return
    _print_study(console(), study, obj["home"])


def _print_study(out: Any, study: str, home: str | None) -> None:
    from modelyard.tuning.report import describe_study

    found = describe_study(study, home)
    best_so = {p["trial"]: p["best"] for p in found["history"]}
    out.print(_trials_table(found["trials"], best_so))
    best = found["best"]
    out.print(
        f"study {found['study']}: {found['metric']} ({found['direction']}), "
        f"{found['epochs']} epochs over {len(found['trials'])} trials"
    )
    if best["trial"] is None:
        out.print("no trial has completed yet")
    else:
        out.print(f"best trial {best['trial']}: {fmt(best['value'])} {_params(best['params'])}")
    if best["model_ref"]:
        out.print(f"registered model [bold]{best['model_ref']}[/bold]")
    if found["importances"]:
        out.print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in found["importances"].items()))


@tune.command("list")
@click.pass_obj
def list_cmd(obj: dict) -> None:
    """The studies in the store."""
    from rich.table import Table

    from modelyard.tuning.report import describe_study
    from modelyard.tuning.study import study_names

    table = Table(show_header=True, header_style="bold")
    for col in ("study", "metric", "trials", "best", "model"):
        table.add_column(col)
    for name in study_names(obj["home"]):
        found = describe_study(name, obj["home"])
        table.add_row(
            name,
            str(found["metric"]),
            str(len(found["trials"])),
            fmt(found["best"]["value"]),
            fmt(found["best"]["model_ref"]),
        )
    console().print(table)


def _quiet_optuna() -> None:
    """Optuna's INFO lines ("A new study created ...") would repeat what the command prints itself."""
    from modelyard.errors import optional_dependency

    with optional_dependency("tune", "modelyard tune"):
        import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def _trials_table(trials: list[dict[str, Any]], best_so: dict[int, float]) -> Any:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for col in ("trial", "state", "value", "best so far", "epochs", "run", "params"):
        table.add_column(col)
    best = None
    for t in trials:
        best = best_so.get(t["number"], best)
        table.add_row(
            str(t["number"]),
            t["state"],
            fmt(t["value"]),
            fmt(best),
            str(t["epochs"]),
            fmt(t["run_id"]),
            _params(t["params"]),
        )
    return table
