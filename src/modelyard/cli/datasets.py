"""`modelyard datasets [list] | show NAME[:N] | upload FILE|FOLDER --name NAME`, on this store or a server's.

``--server URL`` sends the call to a running `modelyard server` (its store, its size limit)
instead of the local store; a FOLDER sent there is joined here into one Parquet file first.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from modelyard.cli._fmt import console
from modelyard.cli._nouns import NounGroup

_SERVER = click.option(
    "--server",
    "server_url",
    default=None,
    metavar="URL",
    help="A running `modelyard server` to use instead of the local store.",
)
_TOKEN = click.option(
    "--token", envvar="MODELYARD_TOKEN", default=None, metavar="TOKEN", help="Bearer token (env MODELYARD_TOKEN)."
)


def _client(url: str, token: str | None) -> Any:
    from modelyard.errors import optional_dependency

    with optional_dependency("serve", "The control plane client"):
        from modelyard.server.client import ServerClient
    return ServerClient(url, token)


def _split(ref: str) -> tuple[str, int | None]:
    name, _, version = ref.strip().partition(":")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        from modelyard.errors import InputError

        raise InputError(
            f"Invalid value for `ref`: expected a dataset reference NAME or NAME:VERSION such as people:1, "
            f"received {ref!r}",
            field="ref",
        )
    return name, int(version)


@click.group(cls=NounGroup)
def datasets() -> None:
    """Stored datasets (uploaded or written by `modelyard anonymize`): list (the default), show, upload."""


@datasets.command("upload")
@click.argument("path", metavar="FILE|FOLDER", type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option("--name", required=True, metavar="NAME", help="The dataset's name; each upload is its next version.")
@_SERVER
@_TOKEN
@click.option("--json", "as_json", is_flag=True, help="Print the stored version as JSON.")
@click.pass_obj
def upload(obj: dict, path: str, name: str, server_url: str | None, token: str | None, as_json: bool) -> None:
    """Store a CSV, Parquet or JSON Lines FILE (or a FOLDER of such files with the same columns) as NAME:k.

    The version records its rows, schema and sha256; a spec trains on it with `data: {dataset: NAME:k,
    target: COLUMN}` and the model version's lineage names it (docs/datasets.md).
    """
    if server_url is None:
        from modelyard.store.upload import upload_dataset

        info = upload_dataset(path, name=name, home=obj["home"]).to_dict()
    else:
        info = _upload_to(server_url, token, Path(path), name)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    columns = len(info.get("schema") or [])
    console().print(
        f"stored dataset [bold]{info['dataset']}[/bold]: {info['rows']} rows, {columns} columns, "
        f"sha256 {info['sha256']}"
    )


def _upload_to(url: str, token: str | None, path: Path, name: str) -> dict[str, Any]:
    from modelyard.store.refs import check_name

    check_name(name, "name")  # before a folder is read
    with _client(url, token) as api:
        if not path.is_dir():
            return api.upload_dataset(path, name)
        import pyarrow.parquet as pq

        from modelyard.store.upload import read_upload

        table, _ = read_upload(path)
        with tempfile.TemporaryDirectory(prefix="modelyard-upload-") as tmp:
            joined = Path(tmp) / f"{path.resolve().name}.parquet"
            pq.write_table(table, joined)
            return api.upload_dataset(joined, name)


@datasets.command("list")
@_SERVER
@_TOKEN
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_datasets(obj: dict, server_url: str | None, token: str | None, as_json: bool) -> None:
    """List stored datasets (also: `modelyard datasets`)."""
    if server_url is None:
        from modelyard.store.datasets import DatasetStore

        found = [v.to_dict() for v in DatasetStore(obj["home"]).list()]
    else:
        with _client(server_url, token) as api:
            found = api.datasets()
    rows = []
    for info in found:
        source = (info.get("lineage") or {}).get("source") or {}
        rows.append(
            {
                "dataset": info["dataset"],
                "rows": info.get("rows"),
                "k": ((info.get("report") or {}).get("k_anonymity") or {}).get("k_achieved"),
                "operation": info.get("operation"),
                "source": source.get("file") or source.get("folder"),
                "sha256": (info.get("sha256") or "")[:12] or None,
                "created_at": info.get("created_at"),
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("dataset", "rows", "k", "operation", "source", "sha256", "created"):
        table.add_column(col)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row.values()))
    console().print(table)


@datasets.command("show")
@click.argument("ref")
@_SERVER
@_TOKEN
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj: dict, ref: str, server_url: str | None, token: str | None, as_json: bool) -> None:
    """Show a stored dataset: rows, schema, sha256, report and lineage (source file sha256, steps; never a key)."""
    if server_url is None:
        from modelyard.store.datasets import DatasetStore

        found = DatasetStore(obj["home"]).get(ref)
        info = {**found.to_dict(), "path": str(found.path)}
    else:
        name, version = _split(ref)
        with _client(server_url, token) as api:
            if version is None:
                from modelyard.errors import NotFoundError

                versions = api.datasets(name)
                if not versions:
                    raise NotFoundError(f"Dataset {name!r} not found for `ref` on {server_url}", field="ref")
                info = versions[-1]
            else:
                info = api.dataset(name, version)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _print_version(info)


def _print_version(info: dict[str, Any]) -> None:
    from modelyard.cli.anonymize import print_report

    out = console()
    lineage, report = info.get("lineage") or {}, info.get("report") or {}
    source = lineage.get("source") or {}
    where = f"  {info['path']}" if info.get("path") else ""
    out.print(f"[bold]{info['dataset']}[/bold]  {info.get('rows')} rows  sha256 {info.get('sha256')}{where}")
    if source.get("files"):
        out.print(f"from the folder {source.get('folder')}: " + ", ".join(f["file"] for f in source["files"]))
    else:
        out.print(f"from {source.get('file')} (sha256 {source.get('sha256')}), {source.get('rows')} rows")
    if info.get("schema"):
        out.print("schema: " + ", ".join(f"{c['name']} {c['type']}" for c in info["schema"]))
    if lineage.get("steps"):
        out.print("steps: " + ", ".join(str(s.get("type")) for s in lineage["steps"]))
    print_report(report)
