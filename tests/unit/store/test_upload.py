"""Uploaded datasets (``store/upload.py``, ``modelyard datasets upload``): a table file or a folder of them
stored as NAME:k with rows, schema and sha256; bad input is one line and stores nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from modelyard.errors import DataError, InputError, SpecError, UnsupportedMediaTypeError
from modelyard.spec import load_spec
from modelyard.store.datasets import DATA_FILE, DatasetStore
from modelyard.store.upload import upload_dataset
from tests.support.cli import run_cli

FRAME = pd.DataFrame({"a": [0.5, 1.0, 2.0, 3.5] * 5, "b": [1, 0, 1, 0] * 5, "y": ["p", "q"] * 10})


def _files(tmp_path: Path) -> dict[str, Path]:
    out = {"csv": tmp_path / "t.csv", "parquet": tmp_path / "t.parquet", "jsonl": tmp_path / "t.jsonl"}
    FRAME.to_csv(out["csv"], index=False)
    FRAME.to_parquet(out["parquet"], index=False)
    FRAME.to_json(out["jsonl"], orient="records", lines=True)
    return out


def _nothing_stored(home: Path) -> bool:
    root = home / "artifacts" / "datasets"
    return DatasetStore().list() == [] and (not root.exists() or not list(root.rglob("*.*")))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_a_table_file_is_stored_with_rows_schema_and_hashes(home: Path, tmp_path: Path, fmt: str) -> None:
    path = _files(tmp_path)[fmt]
    found = upload_dataset(path, name="tab")
    assert found.ref == "tab:1"
    stored = pd.read_parquet(found.data_path())
    pd.testing.assert_frame_equal(stored, FRAME, check_dtype=False)
    info = found.to_dict()
    assert info["rows"] == 20 and [c["name"] for c in info["schema"]] == ["a", "b", "y"]
    assert [c["type"] for c in info["schema"]][:2] == ["double", "int64"]
    assert info["sha256"] == hashlib.sha256((found.path / DATA_FILE).read_bytes()).hexdigest()
    source = info["lineage"]["source"]
    assert info["operation"] == "upload" and source["file"] == path.name and source["format"] == fmt
    assert source["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and source["rows"] == 20
    assert upload_dataset(path, name="tab").ref == "tab:2"  # each upload is the next version


def test_a_folder_of_tables_is_one_table_in_file_name_order(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "months"
    folder.mkdir()
    FRAME.iloc[:7].to_csv(folder / "2026-02.csv", index=False)
    FRAME.iloc[7:].to_csv(folder / "2026-01.csv", index=False)
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden files are not data
    found = upload_dataset(folder, name="months")
    expected = pd.concat([FRAME.iloc[7:], FRAME.iloc[:7]], ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(found.data_path()), expected, check_dtype=False)
    source = found.lineage["source"]
    assert source["folder"] == "months" and source["rows"] == 20
    assert [(f["file"], f["rows"]) for f in source["files"]] == [("months/2026-01.csv", 13), ("months/2026-02.csv", 7)]
    assert source["files"][0]["sha256"] == hashlib.sha256((folder / "2026-01.csv").read_bytes()).hexdigest()


def _bad_folder(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    FRAME.to_csv(folder / "a.csv", index=False)
    if kind == "columns":
        FRAME[["b", "a", "y"]].to_csv(folder / "b.csv", index=False)
    elif kind == "formats":
        FRAME.to_parquet(folder / "b.parquet", index=False)
    elif kind == "images":
        (folder / "cats").mkdir()
    return folder


BAD = [
    ("empty", lambda p: p.write_bytes(b""), "t.csv", InputError, "Empty dataset file 't.csv' (`file`): expected a"),
    ("header only", lambda p: p.write_text("a,y\n"), "t.csv", DataError, "'t.csv' (`file`): the table has no data"),
    ("type", lambda p: p.write_text("a,y\n1,2\n"), "t.txt", UnsupportedMediaTypeError, "expected a .csv, .parquet"),
    ("not parquet", lambda p: p.write_text("s3cr3t,y\n"), "t.parquet", DataError, "expected a parquet file"),
    ("bad csv", lambda p: p.write_bytes(b"a,y\n\xff\xfe,s3cr3t\n"), "t.csv", DataError, "expected UTF-8 text"),
]


@pytest.mark.parametrize(("what", "write", "filename", "error", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_are_one_line_without_contents_and_store_nothing(
    home: Path, tmp_path: Path, what: str, write, filename: str, error: type, message: str
) -> None:
    path = tmp_path / filename
    write(path)
    with pytest.raises(error) as info:
        upload_dataset(path, name="tab")
    assert message in str(info.value) and "s3cr3t" not in str(info.value) and "\n" not in str(info.value)
    assert _nothing_stored(home)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("columns", "columns/b.csv differs from columns/a.csv (expected files of one format"),
        ("formats", "b.parquet differs from formats/a.csv"),
        ("images", "Unsupported entry 'cats' in dataset folder 'images' (`file`)"),
    ],
)
def test_folders_that_are_not_one_table_are_refused(home: Path, tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises((DataError, InputError)) as info:
        upload_dataset(_bad_folder(tmp_path, kind), name="tab")
    assert message in str(info.value)
    assert _nothing_stored(home)


def test_a_bad_name_is_refused_before_the_file_is_read(home: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"Invalid value for `name`: expected a string matching .* received 'Tab'"):
        upload_dataset(tmp_path / "missing.csv", name="Tab")
    assert _nothing_stored(home)


def test_the_short_spec_form_is_the_dataset_source(home: Path) -> None:
    base = {"name": "m", "model": {"input": [2], "layers": [{"dense": 2}]}, "train": {"loss": "cross_entropy"}}
    short = load_spec({**base, "data": {"dataset": "tab:1", "target": "y", "validation": 0.2}})
    long = load_spec({**base, "data": {"source": "dataset", "name": "tab:1", "target": "y", "validation": 0.2}})
    assert short.to_dict() == long.to_dict()
    with pytest.raises(SpecError, match="expected either `dataset: NAME:VERSION` or `source:`, received both"):
        load_spec({**base, "data": {"dataset": "tab:1", "source": "csv", "target": "y"}})


def test_cli_upload_list_show_and_train_with_lineage(home: Path, tmp_path: Path) -> None:
    import yaml

    path = _files(tmp_path)["csv"]
    uploaded = run_cli("datasets", "upload", str(path), "--name", "tab", "--json")
    assert uploaded.code == 0, uploaded.err
    info = json.loads(uploaded.out)
    assert (info["dataset"], info["rows"]) == ("tab:1", 20)
    plain = run_cli("datasets", "upload", str(path), "--name", "tab")
    assert plain.out.startswith("stored dataset tab:2: 20 rows, 3 columns, sha256 ")
    assert "tab:2" in run_cli("datasets").out
    shown = run_cli("datasets", "show", "tab:1")
    assert f"sha256 {info['sha256']}" in shown.out and "schema: a double, b int64, y" in shown.out
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "on-tab",
                "data": {"dataset": "tab:1", "target": "y"},
                "model": {"input": [2], "layers": [{"dense": 2}]},
                "train": {"loss": "cross_entropy", "epochs": 1},
            }
        )
    )
    assert run_cli("train", str(spec)).code == 0
    models = run_cli("models", "show", "on-tab")
    assert f"trained on dataset tab:1 (uploaded, sha256 {info['sha256'][:12]})" in models.out
    model = json.loads(run_cli("models", "show", "on-tab", "--json").out)
    assert (model["lineage"]["dataset"]["ref"], model["lineage"]["dataset"]["sha256"]) == ("tab:1", info["sha256"])
    runs = run_cli("runs", "show", model["run_id"])
    assert f"dataset tab:1 (sha256 {info['sha256'][:12]})" in runs.out
    card = run_cli("models", "card", "on-tab:1")
    source = info["lineage"]["source"]["sha256"]
    assert (
        f"Trained on the stored dataset tab:1 (sha256 {info['sha256']}), made by upload; its source file's "
        f"sha256 is {source}." in card.out
    )


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (("--name", "Tab"), 2, "error: Invalid value for `name`: expected a string matching"),
        (("--name", "tab", "--server", "http://127.0.0.1:9"), 7, "error: No modelyard server at http://127.0.0.1:9"),
    ],
)
def test_cli_refusals_are_one_line(home: Path, tmp_path: Path, args: tuple[str, ...], code: int, line: str) -> None:
    result = run_cli("datasets", "upload", str(_files(tmp_path)["csv"]), *args)
    assert result.code == code and result.err.startswith(line) and result.err.count("\n") == 1, result.err
    assert _nothing_stored(home)
