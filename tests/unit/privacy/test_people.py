"""The issue's measure: a seeded table of 10,000 people with planted identifiers, anonymised and
stored, then a model trained on it beside one trained on the original.

Recall and precision of each identifier kind are measured against the planted truth; k and l are
confirmed by pycanon (an independent checker); the stored dataset, the model version's files and
the run record are searched for the key and for every raw identifier.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from modelyard.privacy import anonymize
from modelyard.privacy.pseudonymize import pseudonym
from modelyard.privacy.redact import KINDS, find
from tests.support.people import PHONE_REGIONS, people

KEY = "test-key-0123456789abcdef-not-secret"
QUASI = ["age", "zip", "sex"]
DIRECT = ["name", "email", "phone", "national_id"]
CONFIG = {
    "name": "people-anon",
    "steps": [
        {"drop": DIRECT},
        {"pseudonymize": "person_id"},
        {"redact": "notes", "phone_regions": list(PHONE_REGIONS)},
        {"generalize": "income", "width": 5000},
        {
            "k_anonymity": {
                "k": 5,
                "l": 2,
                "sensitive": "diagnosis",
                "metric": "height",
                "weights": {"age": 3},
                "quasi_identifiers": {
                    "age": [{"width": 5}, {"width": 10}, {"width": 20}],
                    "zip": [{"truncate": 3}, {"truncate": 2}, {"truncate": 1}],
                    "sex": [],
                },
            }
        },
    ],
}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory):
    data = people(10_000, seed=0)
    path = tmp_path_factory.mktemp("people") / "people.csv"
    data.frame.to_csv(path, index=False)
    return data, path


@pytest.fixture(scope="module")
def stored(table, tmp_path_factory: pytest.TempPathFactory):
    data, path = table
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELYARD_PSEUDONYM_KEY", KEY)
        result = anonymize(CONFIG, path, home=home)
    return result, home


def _scores(data) -> dict[str, tuple[float, float, int]]:
    """Per kind: (recall, precision, planted) of the redaction step's finder against the planted truth."""
    hit, planted, true_found, found = Counter(), Counter(), Counter(), Counter()
    for text, ids in zip(data.frame["notes"], data.planted):
        findings = find(text, phone_regions=PHONE_REGIONS)
        spans = [(kind, text.index(value), text.index(value) + len(value)) for kind, value in ids]
        for kind, start, end in spans:
            planted[kind] += 1
            hit[kind] += any(f.kind == kind and f.start < end and f.end > start for f in findings)
        for f in findings:
            found[f.kind] += 1
            true_found[f.kind] += any(k == f.kind and s < f.end and e > f.start for k, s, e in spans)
    return {k: (hit[k] / planted[k], true_found[k] / max(1, found[k]), planted[k]) for k in KINDS}


def test_each_identifier_kind_is_found_with_recall_99_and_precision_95(table) -> None:
    data, _ = table
    scores = _scores(data)
    print(json.dumps(scores))  # the numbers docs/privacy.md quotes (pytest -s)
    for kind, (recall, precision, planted) in scores.items():
        assert planted > 5000 if kind != "email" else planted == 10_000
        assert recall >= 0.99, (kind, recall)
        assert precision >= 0.95, (kind, precision)


def test_no_raw_identifier_is_left_in_the_stored_dataset(table, stored) -> None:
    import pandas as pd

    data, _ = table
    result, _home = stored
    out = pd.read_parquet(result.dataset.data_path())
    assert not set(DIRECT) & set(out.columns)
    raw = data.frame.set_index(data.frame["person_id"].map(lambda v: pseudonym(KEY.encode(), str(v))))
    assert out["person_id"].isin(raw.index).all()  # every row found again through its pseudonym
    leaked = []
    for pid, note in zip(out["person_id"], out["notes"]):
        row = raw.loc[pid]
        planted = data.planted[int(row["person_id"]) - 100_000]
        leaked += [v for _, v in planted if v in note]
        leaked += [row[c] for c in DIRECT if str(row[c]) in note]
    assert leaked == []
    cells = set(out.astype(str).to_numpy().ravel())
    assert not cells & set(data.frame[DIRECT + ["person_id"]].astype(str).to_numpy().ravel())


def test_k_and_l_are_confirmed_by_pycanon(stored) -> None:
    import pandas as pd
    from pycanon import anonymity

    result, _ = stored
    out = pd.read_parquet(result.dataset.data_path())
    k = anonymity.k_anonymity(out, QUASI)
    l_div = anonymity.l_diversity(out, QUASI, ["diagnosis"])
    report = result.report["k_anonymity"]
    print(json.dumps({"pycanon_k": k, "pycanon_l": l_div, **report}))
    assert k >= 5 and l_div >= 2
    assert (report["k_achieved"], report["l_achieved"]) == (k, l_div)
    assert report["suppressed_rows"] == 10_000 - len(out) <= 500


def _spec(name: str, data: dict) -> dict:
    return {
        "name": name,
        "seed": 0,
        "data": {**data, "target": "label", "features": ["age", "income"], "preprocess": ["standardize"]},
        "model": {"input": [2], "layers": [{"dense": 32, "activation": "relu"}, {"dense": 2}]},
        "train": {"loss": "cross_entropy", "epochs": 8, "batch_size": 64, "metrics": ["accuracy"]},
    }


def test_a_model_trained_on_the_anonymised_table_says_so_and_keeps_its_accuracy(table, stored) -> None:
    from modelyard.store import ModelStore, RunStore
    from modelyard.workflow import train

    _data, path = table
    result, home = stored
    original = train(_spec("risk", {"source": "csv", "path": str(path)}), home=home, progress=False)
    anonymised = train(_spec("risk-anon", {"source": "dataset", "name": result.ref}), home=home, progress=False)
    accuracy = {"original": original.test_metrics["accuracy"], "anonymised": anonymised.test_metrics["accuracy"]}
    print(json.dumps(accuracy))
    assert accuracy["original"] > 0.75
    assert accuracy["anonymised"] >= accuracy["original"] - 0.03

    version = ModelStore(home).get(anonymised.model_ref)
    trained_on = version.lineage["dataset"]
    assert trained_on["ref"] == result.ref and trained_on["operation"] == "anonymize"
    assert trained_on["source_sha256"] == result.lineage["source"]["sha256"]
    assert trained_on["k_anonymity"]["k_achieved"] >= 5
    assert "dataset" not in ModelStore(home).get(original.model_ref).lineage

    # Neither the key nor a raw identifier in the version's files, the dataset's JSON files or the run record.
    texts = [p.read_bytes().decode("utf-8", "replace") for p in version.path.iterdir() if p.suffix == ".json"]
    texts += [(result.dataset.path / f).read_text() for f in ("report.json", "lineage.json", "checksums.json")]
    texts.append(json.dumps(RunStore(home).get(anonymised.run_id).to_dict(), default=str))
    blob = "\n".join(texts)
    assert KEY not in blob
    identifiers = set(_data.frame[DIRECT].astype(str).to_numpy().ravel()) | {v for row in _data.planted for _, v in row}
    assert [v for v in identifiers if v in blob] == []


def test_the_key_never_reaches_the_dataset_folder(stored) -> None:
    result, _ = stored
    for file in Path(result.dataset.path).iterdir():
        assert KEY.encode() not in file.read_bytes()
