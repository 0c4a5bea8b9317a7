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
