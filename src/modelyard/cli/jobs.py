"""`modelyard jobs submit|list|show|logs|cancel`: training jobs on a running `modelyard server`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from modelyard.cli._client import server_options
from modelyard.cli._fmt import console, fmt
from modelyard.cli._nouns import NounGroup
from modelyard.status import FINAL, Status


@click.group(cls=NounGroup)
def jobs() -> None:
    """Training jobs on a running `modelyard server` (submit, list, show, logs, cancel)."""


def read_job_spec(path: Path) -> dict[str, Any] | str:
    """The spec file as a dict with data paths made absolute (they are relative to here,
    as for `modelyard train`), or as text when it does not parse (the server says why)."""
    import yaml

    from modelyard.errors import SpecError
    from modelyard.server.jobs.submit import absolute_data_path

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Cannot read spec file {path}: {exc}", field="spec") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):  # the server words the error (ValueError: a 4,300+ digit integer)
        return text
    return absolute_data_path(data, Path.cwd()) if isinstance(data, dict) else text


@jobs.command("submit")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a spec value (repeatable).")
@click.option(
    "--max-attempts",
    type=int,
    default=None,
    help="Worker losses the job survives (default: the server's --max-attempts).",
)
@click.option("--wait", is_flag=True, help="Follow the job until it ends; exit non-zero unless it succeeded.")
@server_options()
def submit(api: Any, spec: Path, overrides: tuple[str, ...], max_attempts: int | None, wait: bool) -> None:
    """Queue SPEC (YAML or JSON) for training on the server."""
    job = api.submit_job(read_job_spec(spec), overrides, max_attempts)
    out = console()
    out.print(f"job [bold]{job['id']}[/bold] ({job['name']}) queued")
    if wait:
        _follow(api, job["id"], out)


def _follow(api: Any, job_id: str, out: Any) -> None:
    """Print epochs as they end (event stream), then the outcome."""
    import httpx

    from modelyard.errors import TrainingError

    final: dict[str, Any] | None = None
    try:
        for event, data in api.job_events(job_id):
            if event == "epoch":
                epochs = int(data.get("epoch") or 0)
                shown = "  ".join(
                    f"{k} {fmt(v)}"
                    for k, v in data.items()
                    if k not in ("epoch", "time_s", "samples_per_s", "lr") and v is not None
                )
                out.print(f"epoch {epochs}  {shown}")
            elif event == "status" and data.get("error") and data["status"] == Status.QUEUED:
                out.print(f"[yellow]{data['error']}[/yellow]")
            elif event == "end":
                final = data
    except httpx.HTTPError:
        pass  # the stream broke (server restarting?): poll below
    while final is None or final["status"] not in FINAL:
        final = api.job(job_id)
        if final["status"] not in FINAL:
            time.sleep(1.0)
    if final["status"] == Status.SUCCEEDED:
        out.print(f"job {job_id} succeeded: registered model [bold]{final['model_ref']}[/bold] (run {final['run_id']})")
        return
    if final["status"] == Status.CANCELLED:
        raise TrainingError(f"Job {job_id} was cancelled")
    raise TrainingError(f"Job {job_id} failed: {final.get('error')}")


@jobs.command("list")
@click.option("--status", type=click.Choice([s.value for s in Status]))
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@server_options()
def list_jobs(api: Any, status: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    found = api.jobs(status=status, limit=limit)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "name", "status", "attempts", "epoch", "model", "created", "error"):
        table.add_column(col)
    for job in found:
        progress = job.get("progress") or {}
        table.add_row(
            job["id"],
            job["name"],
            job["status"],
            f"{job['attempts']}/{job['max_attempts']}",
            f"{progress.get('epoch', 0)}/{progress.get('epochs') or '?'}",
            job.get("model_ref") or "-",
            (job.get("created_at") or "")[:19],
            job.get("error") or "-",
        )
    console().print(table)


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@server_options()
def show(api: Any, job_id: str, as_json: bool) -> None:
    """Show one job: status, attempts, progress, per-epoch metrics and error."""
    job = api.job(job_id)
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    out = console()
    progress = job.get("progress") or {}
    out.print(
        f"[bold]job {job['id']}[/bold]  {job['name']}  status={job['status']}  "
        f"attempts={job['attempts']}/{job['max_attempts']}  epoch {progress.get('epoch', 0)}/{progress.get('epochs')}"
    )
    out.print(
        f"run={job.get('run_id') or '-'}  model={job.get('model_ref') or '-'}  worker={job.get('worker_id') or '-'}"
    )
    if job.get("error"):
        out.print(f"error: {job['error']}")
    history = job.get("history") or []
    if history:
        keys = [k for k in history[0] if k != "epoch"]
        table = Table(show_header=True, header_style="bold", title="epochs")
        table.add_column("epoch", justify="right")
        for k in keys:
            table.add_column(k, justify="right")
        for row in history:
            table.add_row(str(row.get("epoch")), *[fmt(row.get(k)) for k in keys])
        out.print(table)


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@server_options()
def logs(api: Any, job_id: str, follow: bool) -> None:
    """Print the worker output of every attempt of a job."""
    offset = 0
    while True:
        text, offset, status = api.job_logs(job_id, offset)
        if text:
            click.echo(text, nl=False)
        if not follow or (status in FINAL and not text):
            return
        if not text:
            time.sleep(1.0)


@jobs.command("cancel")
@click.argument("job_id")
@server_options()
def cancel(api: Any, job_id: str) -> None:
    """Cancel a queued job at once, or ask a running job's worker to stop it."""
    job = api.cancel_job(job_id)
    state = "cancelled" if job["status"] == Status.CANCELLED else "cancel requested (its worker stops within seconds)"
    console().print(f"job {job['id']}: {state}")
