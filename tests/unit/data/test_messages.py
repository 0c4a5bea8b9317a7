"""Errors about a data file never quote its contents: a job (or a log) must not learn a file's
first line, a cell or a header by pointing a data source at it. Every reader, on the CLI too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.data import load_source
from modelyard.data.idx import read_idx
from modelyard.errors import DataError, InputError
from modelyard.inputs import read_inputs
from modelyard.spec import DataSpec

SECRET = "s3cr3tK3y"


def _secret_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(f"{SECRET}\n{SECRET}2,{SECRET}3\n")
    return path


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("f.csv", {"source": "csv", "target": "y"}),
        ("f.tsv", {"source": "csv", "target": "y", "sep": "\t"}),
        ("f.csv", {"source": "csv", "target": SECRET}),  # the text column is the target, a cell a feature
        ("f.parquet", {"source": "parquet", "target": "y"}),
        ("f.npz", {"source": "npz"}),
    ],
)
def test_path_sources_never_quote_the_file(tmp_path: Path, name: str, source: dict) -> None:
    path = _secret_file(tmp_path, name)
    with pytest.raises(DataError) as info:
        load_source(DataSpec.model_validate({**source, "path": str(path)}).source, seed=0)
    assert SECRET.lower() not in str(info.value).lower().replace(f"'{SECRET.lower()}'", ""), info.value


def test_a_text_cell_in_a_feature_column_is_not_quoted(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text(f"a,y\n1,0\n{SECRET},1\n")
    with pytest.raises(DataError, match=r"column 'a'.*data row 2 \(line 3\)") as info:
        load_source(DataSpec.model_validate({"source": "csv", "path": str(tmp_path / "f.csv"), "target": "y"}).source)
    assert SECRET not in str(info.value)


def test_npy_and_idx_never_quote_the_file(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, "x.npy")
    np.save(tmp_path / "y.npy", np.zeros(2))
    spec = DataSpec.model_validate({"source": "npy", "x": str(path), "y": str(tmp_path / "y.npy")})
    with pytest.raises(DataError) as info:
        load_source(spec.source)
    assert SECRET not in str(info.value)
    with pytest.raises(DataError, match="bad magic number") as info:
        read_idx(path)
    assert SECRET.encode().hex()[:8] not in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize("name", ["in.csv", "in.json", "in.npy", "in.png"])
def test_prediction_inputs_never_quote_the_file(tmp_path: Path, name: str) -> None:
    path = _secret_file(tmp_path, name)
    if name == "in.json":
        path.write_text(json.dumps({SECRET: [1, 2]}))
    with pytest.raises(InputError) as info:
        read_inputs(path, [2], ["a", "b"])
    assert SECRET not in str(info.value), info.value


def _garbled_npy(path: Path) -> Path:
    # A valid magic string, then a header numpy cannot parse (it quotes it back in a TokenError).
    path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'" + SECRET.encode() + b"': 1}\n")
    return path


def test_a_garbled_npy_header_is_one_line_without_the_header(tmp_path: Path) -> None:
    import zipfile

    x = _garbled_npy(tmp_path / "x.npy")
    np.save(tmp_path / "y.npy", np.zeros(2))
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
        archive.write(x, "x.npy")
        archive.write(tmp_path / "y.npy", "y.npy")
    for data in (
        {"source": "npy", "x": str(x), "y": str(tmp_path / "y.npy")},
        {"source": "npz", "path": str(tmp_path / "d.npz")},
    ):
        with pytest.raises(DataError, match="`data.x`") as info:
            load_source(DataSpec.model_validate(data).source)
        assert SECRET not in str(info.value)
    with pytest.raises(InputError, match="expected a numeric .npy array") as info:
        read_inputs(x, [2])
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(("name", "content"), [("in.npy", b""), ("in.json", b"[" * 100_000)])
def test_damaged_prediction_inputs_are_one_line_errors(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError):
        read_inputs(tmp_path / name, [2])
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match="expected a file, received a folder"):
        read_inputs(tmp_path / "folder.csv", [2])
