"""``anonymize``: a config and a table file in, a stored dataset with report and lineage out.

Everything that can be checked is checked before a row is transformed (the config, the file,
every column a step names against the table as the earlier steps leave it, every key), and
nothing is written before every step has run, so bad input stores nothing.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.data.raw import resolve_path
from modelyard.data.tables import csv_problem
from modelyard.errors import DataError
from modelyard.privacy.config import AnonymizeSpec, load_config
from modelyard.privacy.steps import ANONYMIZERS
from modelyard.store.datasets import DatasetStore, DatasetVersion

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AnonymizeResult", "anonymize", "anonymize_frame", "read_table"]

# A code such as a zip or an account number: digits with a leading zero stay text.
_LEADING_ZERO = re.compile(r"^[+-]?0\d")


@dataclass(frozen=True)
class AnonymizeResult:
    dataset: DatasetVersion
    report: dict[str, Any]
    lineage: dict[str, Any]

    @property
    def ref(self) -> str:
        return self.dataset.ref


def read_table(path: Path, sep: str = ",") -> pd.DataFrame:
    """A CSV (every value read as text, then columns of plain numbers as numbers) or Parquet file."""
    import pandas as pd

    if path.suffix.lower() == ".parquet":
        try:
            return pd.read_parquet(path).rename(columns=str)
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read Parquet file {path} (`input`): {type(exc).__name__}", field="input") from None
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True, compression=None)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Invalid input file {path}: the file is empty, expected a header row and data rows", field="input"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"Cannot read CSV file {path} (`input`): {csv_problem(exc)}", field="input") from None
    for name in frame.columns:
        text = frame[name].dropna()
        numbers = pd.to_numeric(text, errors="coerce")
        if len(text) and numbers.notna().all() and not text.str.match(_LEADING_ZERO).any():
            frame[name] = pd.to_numeric(frame[name])
    return frame


def anonymize_frame(
    config: AnonymizeSpec, frame: pd.DataFrame, where: str = "the table"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the config's steps over ``frame``: the anonymised table and the report."""
    steps = [ANONYMIZERS.build(spec) for spec in config.steps]
    columns = [str(c) for c in frame.columns]
    for i, (spec, step) in enumerate(zip(config.steps, steps)):
        columns = step.check(columns, f"steps[{i}].{spec.type}", where)
    if len(frame) == 0:
        raise DataError(f"Invalid input {where}: the table has a header but no data rows", field="input")
    report: dict[str, Any] = {"rows_in": len(frame)}
    for step in steps:
        frame = step.apply(frame, report)
    report["rows_out"] = len(frame)
    report["columns"] = [str(c) for c in frame.columns]
    return frame, report


def anonymize(
    config: str | Path | dict[str, Any] | AnonymizeSpec,
    input_path: str | Path,
    *,
    name: str | None = None,
    home: str | Path | None = None,
) -> AnonymizeResult:
    """Anonymise the table at ``input_path`` by ``config`` and store it as ``NAME:VERSION``."""
    config = load_config(config)
    if name is not None:
        config = load_config({**config.to_dict(), "name": name})
    path = resolve_path(str(input_path), "input")
    raw = path.read_bytes()
    frame = read_table(path, config.sep)
    out, report = anonymize_frame(config, frame, where=path.name)
    buffer = io.BytesIO()
    out.to_parquet(buffer, index=False)
    lineage = {
        "operation": "anonymize",
        "source": {
            "file": path.name,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
            "rows": report["rows_in"],
            "columns": len(frame.columns),
        },
        "steps": [spec.model_dump(mode="json") for spec in config.steps],  # key_env/key_file names, never a key
        "key_ids": report.pop("key_ids", {}),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "description": config.description,
    }
    version = DatasetStore(home).register(config.name, table=buffer.getvalue(), report=report, lineage=lineage)
    return AnonymizeResult(version, report, lineage)
