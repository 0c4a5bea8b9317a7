"""The k-anonymity / l-diversity step, checked by pycanon and by brute force on small tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from modelyard.errors import SpecError
from modelyard.privacy import anonymize_frame, load_config


def _frame(n: int = 400, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, n)],
            "sex": rng.choice(["F", "M"], n),
            "diagnosis": rng.choice(["a", "b", "c", "d"], n),
        }
    )


def _kanon(**options):
    step = {
        "k_anonymity": {
            "quasi_identifiers": {
                "age": [{"width": 5}, {"width": 10}, {"width": 30}],
                "zip": [{"truncate": 3}, {"truncate": 1}],
                "sex": [],
            },
            **options,
        }
    }
    return load_config({"name": "t", "steps": [step]})


@pytest.mark.parametrize("k", [2, 5, 10, 25])
@pytest.mark.parametrize("metric", ["discernibility", "height"])
def test_pycanon_confirms_k_and_the_report_matches(k: int, metric: str) -> None:
    from pycanon import anonymity

    out, report = anonymize_frame(_kanon(k=k, metric=metric), _frame())
    achieved = anonymity.k_anonymity(out, ["age", "zip", "sex"])
    assert achieved >= k
    assert report["k_anonymity"]["k_achieved"] == achieved
    assert report["k_anonymity"]["suppressed_rows"] == 400 - len(out) <= 0.05 * 400


def test_l_diversity_is_confirmed_by_pycanon() -> None:
    from pycanon import anonymity

    out, report = anonymize_frame(_kanon(k=3, l=3, sensitive="diagnosis"), _frame())
    assert anonymity.l_diversity(out, ["age", "zip", "sex"], ["diagnosis"]) == report["k_anonymity"]["l_achieved"] >= 3
    assert anonymity.k_anonymity(out, ["age", "zip", "sex"]) >= 3


def test_the_chosen_levels_are_the_cheapest_by_brute_force() -> None:
    """Every node of the lattice, costed by hand: the step picks the minimal discernibility."""
    frame = _frame(200, seed=3)
    out, report = anonymize_frame(_kanon(k=4, max_suppression=0.02), frame)
    ages = [lambda a: a, lambda a: a // 5 * 5, lambda a: a // 10 * 10, lambda a: a // 30 * 30, lambda a: 0]
    zips = [lambda z: z, lambda z: z[:3], lambda z: z[:1], lambda z: ""]
    sexes = [lambda s: s, lambda s: ""]
    best = None
    for a, z, s in itertools.product(range(5), range(4), range(2)):
        keys = [(ages[a](x), zips[z](y), sexes[s](w)) for x, y, w in zip(frame["age"], frame["zip"], frame["sex"])]
        sizes = {key: keys.count(key) for key in set(keys)}
        removed = sum(1 for key in keys if sizes[key] < 4)
        if removed > 0.02 * 200:
            continue
        cost = sum(size * size for size in sizes.values() if size >= 4) + removed * 200
        if best is None or cost < best[0]:
            best = (cost, (a, z, s))
    levels = report["k_anonymity"]["levels"]
    assert (levels["age"], levels["zip"], levels["sex"]) == best[1]


def test_weights_of_metric_height_keep_a_column_fine() -> None:
    def levels(**weights: float) -> dict[str, int]:
        _, report = anonymize_frame(_kanon(k=5, metric="height", weights=weights), _frame())
        return report["k_anonymity"]["levels"]

    plain, age_first, zip_first = levels(), levels(age=10), levels(zip=10)
    assert age_first["age"] <= plain["age"] and zip_first["zip"] <= plain["zip"]
    assert age_first["age"] < zip_first["age"] and zip_first["zip"] < age_first["zip"]


def test_a_table_that_cannot_be_split_gets_one_class() -> None:
    frame = _frame(6)
    out, report = anonymize_frame(_kanon(k=6, max_suppression=0.0), frame)
    assert report["k_anonymity"]["classes"] == 1 and len(out) == 6
    assert all(out[c].nunique() == 1 for c in ("age", "zip", "sex"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"l": 2}, "l = 2 needs `sensitive`"),
        ({"sensitive": "sex"}, "cannot also be a quasi-identifier"),
        ({"weights": {"height": 2}}, "not one of the quasi_identifiers"),
        ({"k": 1}, "k"),
    ],
)
def test_bad_options_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        _kanon(**options)
    assert "\n" not in info.value.message and info.value.message.startswith("Invalid value for `steps[0]")


def test_a_lattice_too_big_is_refused() -> None:
    qis = {f"c{i}": [{"width": 1}] * 5 for i in range(6)}
    with pytest.raises(SpecError, match="combinations of levels"):
        load_config({"name": "t", "steps": [{"k_anonymity": {"quasi_identifiers": qis}}]})
