"""`modelyard train SPEC` and `modelyard train --resume RUN`."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from modelyard.cli._fmt import console, fmt, metrics_table

# DistributedSpec.engine's values (a test keeps them equal; the spec module stays out of --help's imports).
ENGINES = ("ray", "local")


def distributed_overrides(workers: int | None, engine: str | None) -> tuple[str, ...]:
    """``--workers``/``--engine`` as the ``train.distributed`` values they set (the spec validates them)."""
    values = {"workers": workers, "engine": engine}
    return tuple(f"train.distributed.{key}={value}" for key, value in values.items() if value is not None)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``timeout``, ``kill``, an eviction) stops training the way Ctrl-C does.

    Python's default SIGTERM kills the process at once, leaving the run ``running``; raised as
    KeyboardInterrupt instead, it unwinds through ``workflow``, which marks the run
    ``interrupted``. Checkpoints are written by rename, so the last one stays whole.
    Installed here, by the entry point, because a signal handler belongs to the program.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a spec value by dotted path, e.g. --set train.lr=0.01 (repeatable).",
)
@click.option(
    "--workers",
    type=click.INT,
    help="Data-parallel (DDP) training on N worker processes: sets train.distributed.workers (docs/scaling.md).",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    help="How the workers run: Ray Train (ray) or spawned local processes (local); sets train.distributed.engine.",
)
@click.option("--resume", "resume_id", metavar="RUN", help="Continue an interrupted run from its last checkpoint.")
@click.option("--progress/--no-progress", default=None, help="Live progress bar (default: on for a terminal).")
@click.pass_obj
def train(
    obj: dict,
    spec: str | None,
    overrides: tuple[str, ...],
    workers: int | None,
    engine: str | None,
    resume_id: str | None,
    progress: bool | None,
) -> None:
    """Train a model from SPEC (YAML or JSON), evaluate it and register a model version."""
    from modelyard import workflow
    from modelyard.errors import UsageError
    from modelyard.training.fast.allocator import keep_freed_memory

    keep_freed_memory()  # process-wide (glibc keeps freed blocks): this entry point's choice, not fit's
    out = console()
    show = sys.stderr.isatty() if progress is None else progress
    distributed = distributed_overrides(workers, engine)
    if resume_id and (spec or overrides or distributed):
        raise UsageError(
            "--resume continues a run with its stored spec; do not pass SPEC, --set, --workers or --engine with it"
        )
    overrides = (*overrides, *distributed)  # after --set: the options name these values outright
    if not resume_id and not spec:
        raise click.UsageError("missing SPEC (a YAML or JSON spec file), or --resume RUN")
    with sigterm_interrupts():
        if resume_id:
            result = workflow.resume(resume_id, home=obj["home"], progress=show, console=out)
        else:
            result = workflow.train(spec, overrides=overrides, home=obj["home"], progress=show, console=out)
    last = result.history[-1] if result.history else {}
    out.print(
        f"run {result.run_id}: {len(result.history)} epochs in {result.train_time_s:.1f}s "
        f"({fmt(last.get('samples_per_s'))} samples/s, {result.runtime.get('precision')} on {result.runtime.get('device')})"
    )
    split = result.test_metrics.get("split", "test")
    out.print(metrics_table({k: v for k, v in result.test_metrics.items() if k != "split"}, title=f"{split} metrics"))
    out.print(f"registered model [bold]{result.model_ref}[/bold]")
