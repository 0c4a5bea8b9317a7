"""``upload_dataset``: a table file (or a folder of them) in, a stored dataset version ``NAME:N`` out.

What ``modelyard datasets upload`` and ``POST /v1/datasets`` store. A CSV, Parquet or JSON Lines
file is read once, written as the version's ``data.parquet`` (the same folder ``anonymize``
writes, so the ``dataset`` data source reads both) with:

- ``report.json``: ``rows``, ``columns`` and ``schema`` (each column's Arrow type);
- ``lineage.json``: ``operation: upload``, the file's name, format, byte count and sha256 (a
  folder: each file's), the time;
- ``checksums.json``: the sha256 of ``data.parquet``, the content hash a model's lineage records.

A FOLDER is several table files of one format with the same columns (exports split by month,
say), stored as one table in file-name order. Image and audio folders are not uploaded: the
``images``/``audio`` sources read class folders from the server's data folders.

Everything is checked before anything is written: the name, the file type, an empty file, a table
without rows, files that disagree. Error messages name the file, never its contents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.data.tables import csv_problem
from modelyard.errors import DataError, InputError, UnsupportedMediaTypeError
from modelyard.store.checksums import sha256_file
from modelyard.store.datasets import DatasetStore, DatasetVersion
from modelyard.store.refs import check_name

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["upload_dataset", "read_upload", "table_format", "TABLE_FORMATS"]

#: File name endings an upload takes, and the format each is read as.
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_EXPECTED = "a .csv, .parquet or .jsonl (.ndjson) file"


@dataclass(frozen=True)
class _Read:
    file: str
    format: str
    sha256: str
    bytes: int
    frame: pd.DataFrame


def table_format(filename: str, field: str = "file") -> str:
    """The format of ``filename`` by its ending; UnsupportedMediaTypeError (415) naming ``field`` if none fits."""
    fmt = TABLE_FORMATS.get(Path(filename).suffix.lower())
    if fmt is None:
        raise UnsupportedMediaTypeError(
            f"Unsupported dataset file {filename!r} (`{field}`): expected {_EXPECTED}", field=field
        )
    return fmt


def _empty(shown: str, field: str) -> InputError:
    return InputError(f"Empty dataset file {shown!r} (`{field}`): expected a header row and data rows", field=field)


def _blank(path: Path) -> bool:
    """Whether the file holds nothing but whitespace (read in chunks: an upload can be large)."""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.strip():
                return False
    return True


def _read(path: Path, shown: str, fmt: str, field: str) -> _Read:
    import pandas as pd

    if _blank(path):
        raise _empty(shown, field)
    try:  # from the file itself: no copy of its bytes in memory beside the table
        if fmt == "csv":
            frame = pd.read_csv(path, compression=None)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False, compression=None)
        else:
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise _empty(shown, field) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        # The readers' messages can quote the file: only the kind of failure is shown.
        why = csv_problem(exc) if fmt == "csv" else f"expected a {fmt} file ({type(exc).__name__})"
        raise DataError(f"Cannot read dataset file {shown!r} (`{field}`): {why}", field=field) from None
    if len(frame) == 0:
        raise DataError(f"Invalid dataset file {shown!r} (`{field}`): the table has no data rows", field=field)
    frame.columns = [str(c) for c in frame.columns]
    return _Read(shown, fmt, sha256_file(path), path.stat().st_size, frame)


def _folder_files(folder: Path, field: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for p in files:
        if not p.is_file():
            raise UnsupportedMediaTypeError(
                f"Unsupported entry {p.name!r} in dataset folder {folder.name!r} (`{field}`): a folder upload is "
                f"table files of one format ({_EXPECTED}); image and audio folders are read from data folders",
                field=field,
            )
        table_format(f"{folder.name}/{p.name}", field)
    if not files:
        raise InputError(f"Empty dataset folder {folder.name!r} (`{field}`): expected {_EXPECTED} or more", field=field)
    return files


def _read_folder(folder: Path, field: str) -> list[_Read]:
    reads: list[_Read] = []
    for path in _folder_files(folder, field):
        got = _read(path, f"{folder.name}/{path.name}", table_format(path.name, field), field)
        if reads and (got.format, list(got.frame.columns)) != (reads[0].format, list(reads[0].frame.columns)):
            raise DataError(
                f"Invalid dataset folder {folder.name!r} (`{field}`): {got.file} differs from {reads[0].file} "
                f"(expected files of one format with the same column names in the same order)",
                field=field,
            )
        reads.append(got)
    return reads


def read_upload(
    path: str | Path, *, filename: str | None = None, field: str = "file"
) -> tuple[pa.Table, dict[str, Any]]:
    """The table at ``path`` (a file, or a folder of table files) as Arrow, and what lineage says of its source.

    ``filename`` is the name the upload had (a server's temporary file has none worth recording);
    it decides the format and is what the lineage records.
    """
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    if path.is_dir():
        reads = _read_folder(path, field)
        frame = pd.concat([r.frame for r in reads], ignore_index=True) if len(reads) > 1 else reads[0].frame
        source: dict[str, Any] = {
            "folder": filename or path.name,
            "format": reads[0].format,
            "files": [{"file": r.file, "sha256": r.sha256, "bytes": r.bytes, "rows": len(r.frame)} for r in reads],
        }
    else:
        shown = filename or path.name
        got = _read(path, shown, table_format(shown, field), field)
        frame = got.frame
        source = {"file": got.file, "format": got.format, "sha256": got.sha256, "bytes": got.bytes}
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError) as exc:
        raise DataError(
            f"Cannot store dataset file {source.get('file') or source.get('folder')!r} (`{field}`): a column mixes "
            f"types that Parquet cannot hold ({type(exc).__name__}); give each column one type",
            field=field,
        ) from None
    return table, {**source, "rows": table.num_rows, "columns": table.num_columns}


def upload_dataset(
    path: str | Path,
    *,
    name: str,
    home: str | Path | None = None,
    filename: str | None = None,
    field: str = "file",
) -> DatasetVersion:
    """Store the table file (or folder of table files) at ``path`` as the next version of ``name``."""
    import pyarrow.parquet as pq

    check_name(name, "name")
    table, source = read_upload(path, filename=filename, field=field)
    report = {
        "rows": table.num_rows,
        "columns": table.column_names,
        "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema],
    }
    lineage = {
        "operation": "upload",
        "source": source,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return DatasetStore(home).register(
        name, table=lambda target: pq.write_table(table, target), report=report, lineage=lineage
    )
