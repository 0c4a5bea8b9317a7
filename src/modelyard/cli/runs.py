"""`modelyard runs [list]`, `modelyard runs show RUN`, `modelyard runs cancel RUN` and `modelyard runs delete RUN`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from modelyard.cli._fmt import console, fmt, metrics_table
from modelyard.cli._nouns import NounGroup
from modelyard.status import Status


@click.group(cls=NounGroup)
def runs() -> None:
    """Training runs: list (the default), show, cancel."""


@runs.command("list")
@click.option("--name", metavar="NAME", help="Only runs of this spec name.")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Most runs listed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_runs(obj: dict, name: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List training runs, newest first (also: `modelyard runs`)."""
    from modelyard.store import RunStore

    records = RunStore(obj["home"]).list(name=name, status=status, limit=limit)
    if as_json:
        click.echo(json.dumps([_brief(r) for r in records], indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "name", "status", "epochs", "created", "model", "test metric"):
        table.add_column(col)
    for r in records:
        b = _brief(r)
        table.add_row(
            b["id"],
            b["name"],
            b["status"],
            str(b["epochs"]),
            b["created_at"][:19],
            b["model"] or "-",
            b["headline"] or (r.error or "-"),
        )
    console().print(table)


def _brief(r) -> dict:  # noqa: ANN001
    test = (r.summary or {}).get("test", {})
    key = next((k for k in ("accuracy", "r2", "mse", "loss") if k in test), None)
    return {
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "epochs": len(r.history),
        "created_at": str(r.created_at),
        "model": r.model_ref,
        "error": r.error,
        "headline": f"{key}={fmt(test[key])}" if key else None,
    }


@runs.command("show")
@click.argument("run_id")
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write learning-curve (and, for classifiers, confusion-matrix) PNGs into this folder.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj: dict, run_id: str, plots_dir: str | None, as_json: bool) -> None:
    """Show one run: status, environment, per-epoch metrics and test metrics."""
    from modelyard import plots
    from modelyard.store import RunStore

    r = RunStore(obj["home"]).get(run_id)
    if as_json:
        click.echo(json.dumps(r.to_dict(), indent=2, default=str))
    else:
        out = console()
        out.print(f"[bold]run {r.id}[/bold]  {r.name}  status={r.status}  model={r.model_ref or '-'}")
        if r.error:
            out.print(f"error: {r.error}")
        env = r.env or {}
        out.print(
            f"seed={env.get('seed')} torch={env.get('packages', {}).get('torch')} "
            f"python={env.get('python')} cores={env.get('cores')}"
        )
        dataset = (r.summary or {}).get("dataset")
        if dataset:
            out.print(f"dataset {dataset.get('ref')} (sha256 {str(dataset.get('sha256'))[:12]})")
        if r.history:
            keys = [k for k in r.history[0] if k != "epoch"]
            table = Table(show_header=True, header_style="bold", title="epochs")
            table.add_column("epoch", justify="right")
            for k in keys:
                table.add_column(k, justify="right")
            for row in r.history:
                table.add_row(fmt(row.get("epoch")), *[fmt(row.get(k)) for k in keys])
            out.print(table)
        test = (r.summary or {}).get("test")
        if test:
            out.print(
                metrics_table(
                    {k: v for k, v in test.items() if k != "split"}, title=f"{test.get('split', 'test')} metrics"
                )
            )
    if plots_dir:
        folder = Path(plots_dir)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        if r.history:
            written.append(plots.learning_curves(r.history, folder / f"{r.id}-learning-curves.png"))
        matrix = ((r.summary or {}).get("test") or {}).get("confusion_matrix")
        if matrix:
            names = (r.summary or {}).get("class_names")
            written.append(plots.confusion_matrix(matrix, names, folder / f"{r.id}-confusion-matrix.png"))
        for p in written:
            click.echo(f"wrote {p}", err=as_json)


@runs.command("cancel")
@click.argument("run_id")
@click.pass_obj
def cancel(obj: dict, run_id: str) -> None:
    """Cancel a queued, running or interrupted run; a running run's process on this machine is stopped.

    A run that a control-plane job trains is cancelled through its job (as `jobs cancel` does), so
    its worker stops it and the job is not retried.
    """
    from modelyard.server.jobs.store import JobStore
    from modelyard.store import RunStore
    from modelyard.store.owner import read_owner

    store = RunStore(obj["home"])
    record = store.get(run_id)
    job = JobStore(obj["home"]).active_for_run(record.id)
    if job is not None:
        JobStore(obj["home"]).cancel(job.id)
        click.echo(f"cancelling run {record.id} through its job {job.id} (its worker stops it)")
        return
    store.cancel(record.id)
    owner = read_owner(record.path) if record.status == "running" else None
    if owner is not None and owner.stop():
        click.echo(f"cancelled run {record.id}; stopped its process {owner.pid}")
    elif owner is not None and owner.alive() is None:
        click.echo(f"cancelled run {record.id}; its process on {owner.host} stops at its next heartbeat")
    else:
        click.echo(f"cancelled run {record.id}")


@runs.command("delete")
@click.argument("run_id")
@click.pass_obj
def delete(obj: dict, run_id: str) -> None:
    """Delete a finished run: its row, per-epoch metrics and folder (checkpoints, plots).

    A queued or running run is refused (cancel it first), and so is a run a control-plane job
    will retry. The model version the run registered stays.
    """
    from modelyard.server.models.in_use import jobs_resuming
    from modelyard.store import RunStore

    gone = RunStore(obj["home"]).delete(run_id, in_use=jobs_resuming)
    kept = f"; its model {gone.model_ref} stays" if gone.model_ref else ""
    click.echo(f"deleted run {gone.id} ({gone.status}, {len(gone.history)} epochs){kept}")
