"""Prediction inputs from files: a CSV without a header row is refused, never read one row short."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.data import load_source
from modelyard.errors import DataError, InputError
from modelyard.inputs import read_inputs
from modelyard.spec import DataSpec

ROWS = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def _csv(tmp_path: Path, header: str | None) -> Path:
    path = tmp_path / "in.csv"
    path.write_text((f"{header}\n" if header else "") + "".join(f"{a},{b}\n" for a, b in ROWS))
    return path


@pytest.mark.parametrize("names", [["a", "b"], None])
def test_a_csv_without_a_header_is_one_line_error_not_a_lost_row(tmp_path: Path, names: list[str] | None) -> None:
    with pytest.raises(InputError, match="no header row") as info:
        read_inputs(_csv(tmp_path, None), [2], names)
    assert "\n" not in str(info.value)
    if names:
        assert "a, b" in str(info.value)  # the model's own feature names: what the header should say


@pytest.mark.parametrize(
    ("header", "names"), [("a,b", ["a", "b"]), ("b,a", ["a", "b"]), ("0,1", ["0", "1"]), ("x,y", None)]
)
def test_a_csv_with_a_header_reads_every_row(tmp_path: Path, header: str, names: list[str] | None) -> None:
    x = read_inputs(_csv(tmp_path, header), [2], names)
    want = np.array(ROWS, dtype=np.float32)
    np.testing.assert_array_equal(x, want[:, ::-1] if header == "b,a" else want)


def test_training_on_a_csv_without_a_header_says_so(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("1,2,0\n3,4,1\n5,6,0\n")
    spec = DataSpec.model_validate({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "y"})
    with pytest.raises(DataError, match="`data.path`.*no header row"):
        load_source(spec.source)


def test_text_instances_come_from_a_json_list_of_strings_or_a_txt_file(tmp_path: Path) -> None:

    (tmp_path / "q.json").write_text('{"instances": ["book a flight", "what is my balance"]}')
    (tmp_path / "q.txt").write_text("book a flight\n\nwhat is my balance\n")
    for name in ("q.json", "q.txt"):
        got = read_inputs(tmp_path / name, [])
        assert got.dtype == object and got.tolist() == ["book a flight", "what is my balance"]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="expected one text instance per line, found none"):
        read_inputs(tmp_path / "empty.txt", [])
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="expected UTF-8 text, one instance per line"):
        read_inputs(tmp_path / "bin.txt", [])


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n1,2\n3,4\n",
        "a,b\n1\n",  # a short row: NaN, as pandas pads it
        "a,b\n1,NA\n2,\n3,null\n",  # pandas' missing-value markers
        "a,b\n\n1,2\n\n",  # blank lines skipped
        'a,b\n"1",2\n',
        "a,b\n1e3, 2\n",
        "a,b\r\n1,2\r\n",
        "\ufeffa,b\n1,2\n",  # a UTF-8 byte order mark
        "a,b,y\n1,2,0\n",  # the target column too
        "b,a\n1,2\n",
        "a,a\n1,2\n",  # a repeated name
        "a,b\n",
    ],
)
@pytest.mark.parametrize("names", [["a", "b"], None])
def test_a_csv_reads_as_pandas_reads_it(tmp_path: Path, text: str, names: list[str] | None) -> None:
    import pandas as pd

    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    frame = pd.read_csv(path)
    if names and set(names) <= set(frame.columns):
        frame = frame[names]
    elif names and set(names) & set(frame.columns):
        pytest.skip("a partial match is refused (tested below)")
    want = frame.to_numpy().astype(np.float32)
    got = read_inputs(path, [2], names)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty, expected a header row and data rows"),
        ("a,b\n1,2\n\n3,4,5\n", "Expected 2 fields in line 4, saw 3"),  # pandas' words and line number
        ("a,b\nx,2\n", "expected numbers, received non-numeric values"),
        ("a,c\n1,2\n", "expected the feature columns the model was trained on, missing b"),
    ],
)
def test_a_bad_csv_is_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "in.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_inputs(path, [2], ["a", "b"])
    assert "\n" not in str(info.value)


def test_a_csv_that_is_not_utf8_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"a,b\n\xff,1\n")
    with pytest.raises(InputError, match="Cannot read CSV .*: expected UTF-8 text"):
        read_inputs(path, [2], None)
