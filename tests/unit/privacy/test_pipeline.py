"""`modelyard anonymize` end to end, and bad input: one line, the right exit code, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modelyard.privacy.pipeline import read_table
from modelyard.store.datasets import DatasetStore
from tests.support.cli import run_cli
from tests.support.people import PHONE_REGIONS, people

KEY = "cli-test-key-0123456789abcdef"
CONFIG = {
    "name": "people-anon",
    "steps": [
        {"drop": ["name", "national_id", "email", "phone"]},
        {"pseudonymize": "person_id"},
        {"redact": "notes", "phone_regions": list(PHONE_REGIONS)},
        {"k_anonymity": {"k": 5, "quasi_identifiers": {"age": [{"width": 10}, {"width": 30}], "sex": []}}},
    ],
}


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "people.csv"
    people(200, seed=1).frame.to_csv(path, index=False)
    return path


def _config(tmp_path: Path, config: dict | str) -> str:
    path = tmp_path / "anon.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return str(path)


def test_anonymize_stores_a_dataset_with_report_and_lineage(
    tmp_path: Path, csv_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setenv("MODELYARD_PSEUDONYM_KEY", KEY)
    config = _config(tmp_path, CONFIG)
    first = run_cli("anonymize", config, str(csv_file))
    assert first.code == 0, first.err
    assert "stored dataset people-anon:1: " in first.out and "k-anonymity over age, sex: k = " in first.out
    second = run_cli("anonymize", config, str(csv_file), "--name", "other", "--json")
    body = json.loads(second.out)
    assert body["dataset"] == "other:1"
    assert body["lineage"]["source"]["sha256"] == hashlib.sha256(csv_file.read_bytes()).hexdigest()
    assert [s["type"] for s in body["lineage"]["steps"]] == ["drop", "pseudonymize", "redact", "k_anonymity"]
    assert body["report"]["redactions"]["notes"]["email"] == 200
    assert KEY not in second.out
    assert run_cli("anonymize", config, str(csv_file)).code == 0
    assert [d.ref for d in DatasetStore().list()] == ["other:1", "people-anon:1", "people-anon:2"]
    listed = run_cli("datasets")
    assert "people-anon:2" in listed.out and "people.csv" in listed.out
    shown = run_cli("datasets", "show", "people-anon")
    assert "people-anon:2" in shown.out and "steps: drop, pseudonymize, redact, k_anonymity" in shown.out


BAD = [
    ("no key", None, {}, 2, "error: Missing pseudonymisation key for `steps[1].pseudonymize`: set the environment"),
    (
        "quasi-identifier that is not a column",
        KEY,
        {"steps": [{"k_anonymity": {"quasi_identifiers": {"zipcode": []}}}]},
        3,
        "error: Invalid value for `steps[0].k_anonymity.quasi_identifiers`: column 'zipcode' not found in people.csv",
    ),
    (
        "a column dropped earlier",
        KEY,
        {"steps": [{"drop": "notes"}, {"redact": "notes"}]},
        3,
        "error: Invalid value for `steps[1].redact.columns`: column 'notes' not found",
    ),
    ("misspelled step", KEY, {"steps": [{"dorp": "name"}]}, 2, "did you mean 'drop'?"),
    (
        "unknown phone region",
        KEY,
        {"steps": [{"redact": "notes", "phone_regions": ["XX"]}]},
        2,
        "error: Invalid value for `steps[0].redact.phone_regions`: unknown region 'XX'",
    ),
    (
        "values outside the bins",
        KEY,
        {"steps": [{"generalize": "age", "bins": [30, 40]}]},
        3,
        "lie outside the bins [30, 40]",
    ),
    (
        "k above the rows",
        KEY,
        {"steps": [{"k_anonymity": {"k": 500, "quasi_identifiers": {"sex": []}}}]},
        3,
        "the table has 200 rows, fewer than k = 500",
    ),
    ("bad name", KEY, {"name": "Not A Name"}, 2, "error: Invalid value for `name`"),
    ("no steps", KEY, {"steps": []}, 2, "error: Invalid value for `steps`"),
]


@pytest.mark.parametrize(("what", "key", "change", "code", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_stores_nothing(
    what: str,
    key: str | None,
    change: dict,
    code: int,
    message: str,
    tmp_path: Path,
    csv_file: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if key is None:
        monkeypatch.delenv("MODELYARD_PSEUDONYM_KEY", raising=False)
    else:
        monkeypatch.setenv("MODELYARD_PSEUDONYM_KEY", key)
    result = run_cli("anonymize", _config(tmp_path, {**CONFIG, **change}), str(csv_file))
    assert result.code == code, result.err
    assert result.err.count("\n") == 1 and message in result.err
    assert KEY not in result.err
    assert DatasetStore().list() == []
    assert not (home / "artifacts" / "datasets").exists() or not any(
        (home / "artifacts" / "datasets").rglob("*.parquet")
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("missing.csv",), 3, "error: Data file not found for `input`"),
        (("--name", "UPPER"), 2, "error: Invalid value for `name`"),
    ],
)
def test_bad_arguments(args: tuple[str, ...], code: int, message: str, tmp_path: Path, csv_file: Path) -> None:
    config = _config(tmp_path, CONFIG)
    argv = ("anonymize", config, *(args if args[0] == "missing.csv" else (str(csv_file), *args)))
    result = run_cli(*[str(tmp_path / a) if a == "missing.csv" else a for a in argv])
    assert result.code == code and message in result.err and result.err.count("\n") == 1
    assert DatasetStore().list() == []


def test_a_broken_config_file_is_one_line(tmp_path: Path, csv_file: Path) -> None:
    result = run_cli("anonymize", _config(tmp_path, "steps: [drop: [a]\n"), str(csv_file))
    assert result.code == 2 and result.err.startswith("error: ") and result.err.count("\n") == 1


def test_csv_columns_of_codes_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("zip,age,price,note\n01234,31,3.50,a\n98765,40,12,\n")
    frame = read_table(path)
    assert list(frame["zip"]) == ["01234", "98765"]
    assert frame["age"].dtype.kind == "i" and frame["price"].dtype.kind == "f"
