"""Reading prediction inputs from files: JSON, CSV, NPY and images (PNG/JPEG).

Each reader returns a float array of raw samples, shaped like the model's raw input
(before preprocessing); shape checks with clear messages happen here for images and in
the model's preprocessing pipeline for everything else.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._documents import load_json
from modelyard.errors import InputError

__all__ = ["read_inputs", "image_to_array", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_inputs(path: str | Path, raw_shape: list[int], feature_names: list[str] | None = None) -> np.ndarray:
    """Load the instances in ``path`` as an array of shape (N, *raw_shape)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Input file not found: {path}")
    if path.is_dir():
        raise InputError(f"Invalid input file {path}: expected a file, received a folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json(path)
    if suffix == ".csv":
        return _csv(path, feature_names)
    if suffix == ".npy":
        from modelyard.data.npy import NPY_ERRORS

        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, *NPY_ERRORS) as exc:  # numpy's messages can quote the header: not shown
            raise InputError(
                f"Cannot read {path}: expected a numeric .npy array written by np.save, pickled objects "
                f"refused ({type(exc).__name__})"
            ) from None
        if not isinstance(arr, np.ndarray):
            raise InputError(f"Cannot read {path}: expected one .npy array, received a .npz archive")
        return _numeric(arr, path)
    if suffix == ".txt":  # text: one instance per line
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"Cannot read {path}: expected UTF-8 text, one instance per line") from None
        if not any(line.strip() for line in lines):
            raise InputError(f"Invalid input file {path}: expected one text instance per line, found none")
        return _strings([line for line in lines if line.strip()])
    if suffix in IMAGE_SUFFIXES:
        return image_to_array(path.read_bytes(), raw_shape, source=str(path))[None]
    raise InputError(f"Unsupported input file {path.name}: expected .json, .csv, .npy, .txt, .png or .jpg")


def _numeric(arr: Any, where: Any) -> np.ndarray:
    try:
        out = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"Invalid input in {where}: expected numbers, received non-numeric values") from None
    return out


def _json(path: Path) -> np.ndarray:
    data = load_json(path.read_bytes(), InputError, f"JSON in {path}")
    if isinstance(data, dict):
        if "instances" not in data:
            raise InputError(
                f'Invalid JSON in {path}: expected a list of instances or {{"instances": [...]}}, '
                f"received a mapping of {len(data)} other keys"
            )
        data = data["instances"]
    if isinstance(data, list) and data and all(isinstance(v, str) for v in data):
        return _strings(data)  # text instances: the model's tokenize step reads them
    return _numeric(data, path)


def _strings(items: list[str]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


# pandas.read_csv's default missing-value markers: a cell holding one is NaN, as when pandas read these files.
_NA = frozenset(
    "|#N/A|#N/A N/A|#NA|-1.#IND|-1.#QNAN|-NaN|-nan|1.#IND|1.#QNAN|<NA>|N/A|NA|NULL|NaN|None|n/a|nan|null".split("|")
)


def _csv(path: Path, feature_names: list[str] | None) -> np.ndarray:
    """Columns named like the training features are taken by name (extra columns, such as
    the target, are ignored); a CSV with none of those names is read by position.

    Read with the standard library's csv module as pandas.read_csv reads such a file (blank
    lines skipped, a short row padded with NaN, a long one refused, repeated names made
    ``a``, ``a.1``): importing pandas would take longer than the rest of a prediction but torch.
    """
    from modelyard.data.tables import csv_problem, header_is_data

    try:
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        rows = [(reader.line_num, row) for row in reader if row]  # (line in the file, cells)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"Cannot read CSV {path}: {csv_problem(exc)}") from None
    if not rows:
        raise InputError(f"Cannot read CSV {path}: the file is empty, expected a header row and data rows")
    names = _unique(rows[0][1])
    if header_is_data(names) and not (feature_names and set(feature_names) <= set(names)):
        # Read as a header, the first sample would silently be lost.
        raise InputError(
            f"Invalid CSV {path}: its first row holds only numbers, so the file seems to have no header row; "
            f"expected a header row naming the feature columns"
            + (f" ({', '.join(feature_names[:5])}{', ...' if len(feature_names) > 5 else ''})" if feature_names else "")
        )
    columns = list(range(len(names)))
    if feature_names:
        present = [c for c in feature_names if c in names]
        if len(present) == len(feature_names):
            columns = [names.index(c) for c in feature_names]
        elif present:
            missing = [c for c in feature_names if c not in names]
            shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise InputError(
                f"Invalid CSV {path}: expected the feature columns the model was trained on, missing {shown}"
            )
    values = np.full((len(rows) - 1, len(names)), np.nan, dtype=np.float64)  # float64 first, as pandas parses
    for i, (line, row) in enumerate(rows[1:]):
        if len(row) > len(names):  # pandas' words for it
            raise InputError(f"Cannot read CSV {path}: Expected {len(names)} fields in line {line}, saw {len(row)}")
        for j, cell in enumerate(row):
            if cell.strip() not in _NA:
                try:
                    values[i, j] = float(cell)
                except ValueError:
                    raise InputError(
                        f"Invalid input in {path}: expected numbers, received non-numeric values"
                    ) from None
    return _numeric(values[:, columns], path)


def _unique(names: list[str]) -> list[str]:
    """Header names with repeats renamed ``a.1``, ``a.2`` (pandas' rule)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}.{count}")
    return out


def image_to_array(
    data: bytes, raw_shape: list[int], *, source: str = "image", max_pixels: int = 4096 * 4096
) -> np.ndarray:
    """Decode PNG/JPEG bytes into one raw sample shaped ``raw_shape``.

    ``raw_shape`` is either flat ([784] for 28x28 grayscale) or channels-first [C, H, W].
    The image must already have the model's size: resizing silently would hide mistakes.
    """
    from modelyard.image_decode import convert_image, open_image

    image = open_image(data, source=source, max_pixels=max_pixels, error=InputError)
    if len(raw_shape) == 3:
        channels, height, width = raw_shape
    else:
        size = int(np.prod(raw_shape))
        side = int(round(size**0.5))
        channels = 1
        if side * side != size:
            side3 = int(round((size / 3) ** 0.5))
            if 3 * side3 * side3 != size:
                raise InputError(f"This model takes inputs of shape {raw_shape}, which is not an image")
            channels, side = 3, side3
        height = width = side
    if (image.height, image.width) != (height, width):
        raise InputError(
            f"Invalid image {source}: expected {width}x{height} pixels, received {image.width}x{image.height} "
            "(width x height)"
        )
    arr = np.asarray(convert_image(image, "L" if channels == 1 else "RGB"), dtype=np.float32)
    if channels == 3:
        arr = arr.transpose(2, 0, 1)
    return arr.reshape(raw_shape)
