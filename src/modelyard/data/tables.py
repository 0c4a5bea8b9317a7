"""CSV, Parquet and JSON Lines files: one row per sample, one ``target`` column, numeric feature
columns, or one ``text`` column (text data, tokenized by a ``tokenize`` step).

Feature columns must already be numbers: modelyard does not one-hot encode them behind
the user's back. A string (or boolean) target column is a class label: its sorted unique
values become ``class_names`` and ``y`` the int64 index into them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.data.access import current_access
from modelyard.data.raw import SOURCES, RawData, missing_key_error, resolve_path
from modelyard.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TableOptions", "CsvOptions", "frame_to_raw", "labels_to_classes", "csv_problem", "header_is_data"]


class TableOptions(StrictModel):
    path_fields: ClassVar[dict[str, bool]] = {"path": False}  # option → is a folder

    path: str = Field(min_length=1)
    target: str = Field(min_length=1)
    features: list[str] | None = Field(None, min_length=1)
    # A text column: each sample is its string (text data, for a `tokenize` step), not numbers.
    text: str | None = Field(None, min_length=1)
    # A column naming each row's group (the client under `federated.partition: {column: ...}`):
    # read as a label of the row, never a feature.
    groups: str | None = Field(None, min_length=1)


class CsvOptions(TableOptions):
    sep: str = Field(",", min_length=1)


@SOURCES.component("csv", options=CsvOptions, primary="path")
def csv(opts: CsvOptions, *, seed: int) -> RawData:
    """A CSV file with a header row: numeric feature columns plus a `target` column."""
    import pandas as pd  # here, not at the top: reading a spec need not pay ~0.5 s for it

    path = resolve_path(opts.path, "data.path")
    try:
        # In a server a .csv.gz could inflate past the size cap: files are read as they are.
        frame = pd.read_csv(path, sep=opts.sep, compression=None if current_access() else "infer")
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Invalid data file {path} (`data.path`): the file is empty, expected a header row and data rows",
            field="data.path",
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"Cannot read CSV file {path} (`data.path`): {csv_problem(exc)}", field="data.path") from None
    # Data row i is line i + 2 of the file (line 1 is the header).
    return frame_to_raw(frame, path, opts, row_label=lambda i: f"data row {i + 1} (line {i + 2})")


@SOURCES.component("parquet", options=TableOptions, primary="path")
def parquet(opts: TableOptions, *, seed: int) -> RawData:
    """A Parquet file: numeric feature columns plus a `target` column."""
    import pandas as pd

    path = resolve_path(opts.path, "data.path")
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise DataError(f"Cannot read Parquet file {path} (`data.path`): {exc}", field="data.path") from None
    except (OSError, ValueError) as exc:
        # pyarrow's messages can quote the file's schema: only the kind of failure is shown.
        raise DataError(
            f"Cannot read Parquet file {path} (`data.path`): expected a Parquet file ({type(exc).__name__})",
            field="data.path",
        ) from None
    return frame_to_raw(frame, path, opts, row_label=lambda i: f"row {i}")


@SOURCES.component("jsonl", "ndjson", options=TableOptions, primary="path")
def jsonl(opts: TableOptions, *, seed: int) -> RawData:
    """JSON Lines: one object per line with a `target` key and numeric features or a `text` key."""
    import pandas as pd

    path = resolve_path(opts.path, "data.path")
    try:
        frame = pd.read_json(path, lines=True, dtype=False, compression=None if current_access() else "infer")
    except (ValueError, UnicodeDecodeError) as exc:
        # pandas' JSON messages can quote the file: only the kind of failure is shown.
        raise DataError(
            f"Cannot read JSON Lines file {path} (`data.path`): expected one JSON object per line "
            f"({type(exc).__name__})",
            field="data.path",
        ) from None
    return frame_to_raw(frame, path, opts, row_label=lambda i: f"line {i + 1}")


# The C parser's row-count message names line numbers only; other parser messages can quote the file.
_SAFE_PARSER_MESSAGE = re.compile(r"Expected \d+ fields in line \d+, saw \d+")


def csv_problem(exc: BaseException) -> str:
    """What went wrong reading a CSV file, without quoting the file (its lines may be secrets)."""
    if isinstance(exc, UnicodeDecodeError):
        return "expected UTF-8 text"
    match = _SAFE_PARSER_MESSAGE.search(str(exc))
    if match:
        return match.group(0)
    return "expected comma-separated text with a header row"


def header_is_data(names: list[str]) -> bool:
    """True when every column name is a number: the "header" is a data row (the file has none).

    pandas renames a repeated name ``1.0`` to ``1.0.1``, so that suffix is allowed too.
    """

    def number(text: str) -> bool:
        for candidate in (text, text.rsplit(".", 1)[0]):
            try:
                float(candidate)
                return True
            except ValueError:
                continue
        return False

    return bool(names) and all(number(str(n).strip()) for n in names)


def frame_to_raw(frame: pd.DataFrame, path: Path, opts: TableOptions, *, row_label: Any) -> RawData:
    """Validate a table and split it into float32 features and a target."""
    frame = frame.rename(columns=str)
    columns = list(frame.columns)
    if not columns:
        raise DataError(
            f"Invalid data file {path} (`data.path`): the file is empty, expected a header row and data rows",
            field="data.path",
        )
    if opts.target not in columns:
        if header_is_data(columns):
            raise DataError(
                f"Invalid data file {path} (`data.path`): its first row holds only numbers, so the file seems to "
                f"have no header row; expected a header naming the columns (`data.target` names one of them)",
                field="data.path",
            )
        raise missing_key_error("column", opts.target, columns, path, "data.target")
    if len(frame) == 0:
        raise DataError(
            f"Invalid data file {path} (`data.path`): the file has a header but no data rows", field="data.path"
        )
    groups = _groups(frame, path, opts, row_label)
    if opts.text is not None:
        raw = _text_table(frame, path, opts, row_label)
        raw.groups = groups
        return raw
    skip = {opts.target, opts.groups}
    features = list(opts.features) if opts.features is not None else [c for c in columns if c not in skip]
    for name in features:
        if name not in columns:
            raise missing_key_error("column", name, columns, path, "data.features")
    for column, what in ((opts.target, "target"), (opts.groups, "groups")):
        if column is not None and column in features:
            raise DataError(
                f"Invalid value for `data.features`: the {what} column {column!r} cannot also be a feature",
                field="data.features",
            )
    if not features:
        raise DataError(
            f"Invalid data file {path}: expected at least one feature column besides the target {opts.target!r}, found none",
            field="data.features",
        )
    x = np.empty((len(frame), len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        x[:, j] = _numeric_column(frame[name], name, path, row_label)
    y, class_names = _target(frame[opts.target], opts.target, path, row_label)
    return RawData(x_train=x, y_train=y, class_names=class_names, feature_names=features, kind="tabular", groups=groups)


def _groups(frame: pd.DataFrame, path: Path, opts: TableOptions, row_label: Any) -> np.ndarray | None:
    """The ``groups`` column as one string per row (a missing value is refused), or None."""
    if opts.groups is None:
        return None
    columns = list(frame.columns)
    if opts.groups not in columns:
        raise missing_key_error("column", opts.groups, columns, path, "data.groups")
    if opts.groups in (opts.target, opts.text):
        raise DataError(
            f"Invalid value for `data.groups`: the {'target' if opts.groups == opts.target else 'text'} column "
            f"{opts.groups!r} cannot also name the groups",
            field="data.groups",
        )
    values = frame[opts.groups]
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"Invalid groups column {opts.groups!r} in {path} (`data.groups`): expected a group name on every row, "
            f"received a missing value at {row_label(int(missing.argmax()))}",
            field="data.groups",
        )
    return values.astype(str).to_numpy(dtype=object)


def _text_table(frame: pd.DataFrame, path: Path, opts: TableOptions, row_label: Any) -> RawData:
    """One string per row from the `text` column (no numeric features with it)."""
    columns = list(frame.columns)
    if opts.features is not None:
        raise DataError(
            "Invalid value for `data.features`: a text table's samples are its `text` column; "
            f"expected no features with text {opts.text!r}, received {len(opts.features)}",
            field="data.features",
        )
    if opts.text not in columns:
        raise missing_key_error("column", opts.text, columns, path, "data.text")  # type: ignore[arg-type]
    if opts.text == opts.target:
        raise DataError(
            f"Invalid value for `data.text`: the target column {opts.target!r} cannot also be the text",
            field="data.text",
        )
    values = frame[opts.text].to_numpy(dtype=object)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            what = "a missing value" if value is None or value != value else f"a {type(value).__name__}"
            raise DataError(
                f"Invalid text column {opts.text!r} in {path} (`data.text`): expected text, received {what} "
                f"at {row_label(i)}",
                field="data.text",
            )
    y, class_names = _target(frame[opts.target], opts.target, path, row_label)
    return RawData(x_train=values, y_train=y, class_names=class_names, feature_names=[opts.text], kind="text")


def _numeric_column(series: pd.Series, name: str, path: Path, row_label: Any) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64)
    elif pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        coerced = pd.to_numeric(series, errors="coerce")
        bad = coerced.isna() & series.notna()
        i = int(np.argmax(bad.to_numpy())) if bad.any() else 0
        raise DataError(
            f"Invalid feature column {name!r} in {path} (`data.features`): expected numbers, received "
            f"a value that is not a number at {row_label(i)}; modelyard does not one-hot encode features automatically: "
            f"encode the column as numbers in the file or leave it out of `data.features`",
            field="data.features",
        )
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.argmin(finite))
        raise DataError(
            f"Invalid feature column {name!r} in {path}: expected finite numbers, received {values[i]} "
            f"(first at {row_label(i)}); fill or drop missing values before training",
            field="data.features",
        )
    return values


def _target(series: pd.Series, name: str, path: Path, row_label: Any) -> tuple[np.ndarray, list[str] | None]:
    import pandas as pd

    missing = series.isna().to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(
            f"Invalid target column {name!r} in {path} (`data.target`): missing value at {row_label(i)}",
            field="data.target",
        )
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy()
        if np.issubdtype(values.dtype, np.integer):
            return values.astype(np.int64), None
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            i = int(np.argmin(np.isfinite(values)))
            raise DataError(
                f"Invalid target column {name!r} in {path} (`data.target`): expected finite numbers, received {values[i]} at {row_label(i)}",
                field="data.target",
            )
        return values.astype(np.float32), None
    return labels_to_classes(series.astype(str).to_numpy())


def labels_to_classes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """String labels → (int64 indices, sorted class names)."""
    names, index = np.unique(labels.astype(str), return_inverse=True)
    return index.astype(np.int64).reshape(-1), [str(n) for n in names]
