"""``/v1/datasets``: what ``modelyard datasets upload|list|show --server URL`` talks to.

- ``POST /v1/datasets?name=N&filename=F``: the body is the file itself (CSV, Parquet or JSON
  Lines; its format from ``filename``'s ending, else the Content-Type), streamed to a temporary
  file in the store and stored as the next version ``N:k`` (``store/upload.py``). At most the
  server's ``--max-data-mb``: a declared length over it is refused before a byte is read, a longer
  stream as soon as it passes it (413). The name and the format are checked before the body is
  read; nothing is stored unless the whole upload is a valid table. 201 with the version.
- ``GET /v1/datasets``: every stored version; ``GET /v1/datasets/{name}/versions/{version}``: one.

A job names a stored dataset by ``data: {dataset: N:k}`` and reads it from the store, so uploads
are how data gets to a server whose data folders a user cannot write. The upload is a write:
an admin token off loopback, like every other write (the auth middleware).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from modelyard.errors import InputError, UnsupportedMediaTypeError
from modelyard.server.body import check_declared, stream_body
from modelyard.store import paths
from modelyard.store.datasets import DatasetStore
from modelyard.store.gc import TMP_PREFIX
from modelyard.store.refs import check_name
from modelyard.store.upload import table_format, upload_dataset

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router"]

#: Content-Types that name a table format when the upload has no file name.
_MEDIA_SUFFIX = {
    "text/csv": ".csv",
    "application/vnd.apache.parquet": ".parquet",
    "application/x-parquet": ".parquet",
    "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
    "application/x-jsonlines": ".jsonl",
}


def _upload_name(filename: str | None, content_type: str | None) -> str:
    """The file name the lineage records and the format is read from; 400/415 naming the field."""
    if filename is not None:
        shown = Path(filename.replace("\\", "/")).name
        if not shown or len(shown) > 255 or not shown.isprintable():
            raise InputError(
                f"Invalid value for `filename`: expected a file name such as people.csv, received {filename!r}",
                field="filename",
            )
        table_format(shown, "filename")
        return shown
    media = (content_type or "").split(";")[0].strip().lower()
    suffix = _MEDIA_SUFFIX.get(media)
    if suffix is None:
        raise UnsupportedMediaTypeError(
            f"Unsupported dataset upload (`filename`): pass ?filename=NAME.csv|.parquet|.jsonl or a Content-Type "
            f"of {', '.join(sorted(_MEDIA_SUFFIX))}, received {media or 'none'!r}",
            field="filename",
        )
    return "upload" + suffix


def router(state: ServerState) -> APIRouter:
    api = APIRouter(prefix="/v1/datasets", tags=["datasets"])
    store = DatasetStore(state.home)
    limit = state.config.max_data_mb * 1024 * 1024

    @api.post("", status_code=201, summary="Upload a table (CSV, Parquet, JSON Lines) as dataset version NAME:k")
    async def upload(
        request: Request,
        name: str = Query(description="the dataset's name; each upload is its next version"),
        filename: str | None = Query(None, description="the file's name: its ending gives the format"),
    ) -> dict[str, Any]:
        check_name(name, "name")
        shown = _upload_name(filename, request.headers.get("content-type"))
        check_declared(request, limit, what="Dataset upload")
        parent = await run_in_threadpool(paths.ensure_dir, paths.datasets_root(state.home))
        folder = Path(await run_in_threadpool(lambda: tempfile.mkdtemp(prefix=TMP_PREFIX, dir=parent)))
        try:
            target = folder / ("upload" + Path(shown).suffix.lower())
            with target.open("wb") as out:
                async for chunk in stream_body(request, limit, what="Dataset upload"):
                    await run_in_threadpool(out.write, chunk)
            found = await run_in_threadpool(
                lambda: upload_dataset(target, name=name, home=state.home, filename=shown, field="body")
            )
            return await run_in_threadpool(found.to_dict)
        finally:
            await run_in_threadpool(shutil.rmtree, folder, True)

    @api.get("", summary="The stored dataset versions, by name then version")
    def list_datasets(name: str | None = None) -> dict[str, Any]:
        if name is not None:
            check_name(name, "name")
        return {"datasets": [found.to_dict() for found in store.list(name)]}

    @api.get("/{name}/versions/{version}", summary="One stored dataset version: rows, schema, sha256, lineage")
    def show(name: str, version: int) -> dict[str, Any]:
        return store.get(f"{name}:{version}", field="ref").to_dict()

    return api
