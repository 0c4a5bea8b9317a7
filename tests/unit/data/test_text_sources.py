"""Text sources: a `text` column of csv/jsonl/parquet tables, and the built-in clinc150 data set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.components import ComponentSpec
from modelyard.data import load_source
from modelyard.data.clinc150 import SHA256
from modelyard.errors import DataError
from tests.support.datasets import shared_dataset


def _src(type_: str, **options: object):
    return load_source(ComponentSpec(type=type_, options=options))


def test_a_text_column_of_csv_and_jsonl_is_one_string_per_sample(tmp_path: Path) -> None:
    rows = [("book a flight, please", "travel"), ('say "hi"', "chat"), ("what's 2+2", "math")]
    csv = tmp_path / "q.csv"
    csv.write_text("query,intent\n" + "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{y}\n' for t, y in rows))
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("".join(json.dumps({"query": t, "intent": y}) + "\n" for t, y in rows))
    for raw in (
        _src("csv", path=str(csv), target="intent", text="query"),
        _src("jsonl", path=str(jsonl), target="intent", text="query"),
    ):
        assert raw.kind == "text" and raw.x_train.dtype == object
        assert list(raw.x_train) == [t for t, _ in rows]
        assert raw.class_names == ["chat", "math", "travel"] and raw.y_train.tolist() == [2, 0, 1]


def test_bad_text_tables_are_one_line_errors_that_quote_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("query,intent,n\nsecret-text-1,a,1\n,b,2\n")
    with pytest.raises(DataError, match=r"expected text, received a missing value at data row 2 \(line 3\)") as err:
        _src("csv", path=str(path), target="intent", text="query")
    assert "secret-text-1" not in str(err.value)
    with pytest.raises(DataError, match="expected no features with text 'query'"):
        _src("csv", path=str(path), target="intent", text="query", features=["n"])
    with pytest.raises(DataError, match="column 'qeury' not found"):
        _src("csv", path=str(path), target="intent", text="qeury")
    with pytest.raises(DataError, match="the target column 'intent' cannot also be the text"):
        _src("csv", path=str(path), target="intent", text="intent")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "private words", "intent": "a"}\n{not json\n')
    with pytest.raises(DataError, match=r"expected one JSON object per line \(ValueError\)") as err:
        _src("jsonl", path=str(bad), target="intent", text="query")
    assert "private" not in str(err.value)


def test_clinc150_has_the_published_split_sizes() -> None:
    folder = shared_dataset("clinc150")
    raw = _src("clinc150", path=str(folder))
    assert (len(raw.x_train), len(raw.x_test), len(raw.class_names)) == (15_000, 4_500, 150)
    assert np.bincount(raw.y_train).tolist() == [100] * 150 and np.bincount(raw.y_test).tolist() == [30] * 150
    published = json.loads((folder / "data_full.json").read_text())
    assert raw.x_train[0] == published["train"][0][0]
    assert raw.class_names[raw.y_train[0]] == published["train"][0][1]
    with_oos = _src("clinc150", path=str(folder), out_of_scope="class", use_val=True)
    assert (len(with_oos.x_train), len(with_oos.x_test), len(with_oos.class_names)) == (18_200, 5_500, 151)
    assert (with_oos.y_test == with_oos.class_names.index("oos")).sum() == 1_000


def test_clinc150_is_found_on_the_data_search_path_and_downloads_are_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shared_dataset("clinc150")
    monkeypatch.setenv("MODELYARD_DATA", f"{tmp_path / 'nothing'}:{folder.parent}")
    assert len(_src("clinc150").x_train) == 15_000
    monkeypatch.setenv("MODELYARD_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="CLINC150 not found: looked for data_full.json in .*MODELYARD_CLINC150_URL"):
        _src("clinc150")
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes((folder / "data_full.json").read_bytes().replace(b"balance", b"balanse", 1))
    with pytest.raises(DataError, match=f"Checksum mismatch .*expected sha256 {SHA256}"):
        _src("clinc150", url=tampered.as_uri())
    assert not (tmp_path / "cache" / "modelyard" / "clinc150" / "data_full.json").exists()
    raw = _src("clinc150", url=(folder / "data_full.json").as_uri())  # a verified download into the cache
    assert len(raw.x_test) == 4_500
    assert (tmp_path / "cache" / "modelyard" / "clinc150" / "data_full.json").is_file()
