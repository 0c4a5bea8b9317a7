"""Generalisations: width and bins keep numbers numbers, truncate and map generalise codes."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import DataError, SpecError
from modelyard.privacy.generalize import Generalization, generalized


def _series(values, name="c"):
    import pandas as pd

    return pd.Series(values, name=name)


def test_width_gives_the_lower_edge_and_interval_a_label() -> None:
    out = generalized(_series([0, 9, 10, 37.5, np.nan]), Generalization(width=10), "f")
    np.testing.assert_array_equal(out.to_numpy(), [0, 0, 10, 30, np.nan])
    labels = generalized(_series([0, 37.5]), Generalization(width=10, interval=True), "f")
    assert list(labels) == ["[0, 10)", "[30, 40)"]


def test_bins_match_numpy_digitize_and_refuse_values_outside() -> None:
    edges = [0, 18, 30, 65, 120]
    values = np.array([0, 17, 18, 29.9, 64, 65, 120])
    out = generalized(_series(values), Generalization(bins=edges), "f").to_numpy()
    expected = np.asarray(edges)[np.clip(np.digitize(values, edges) - 1, 0, len(edges) - 2)]
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(DataError, match=r"2 values of column 'age' lie outside the bins \[0, 120\]"):
        generalized(_series([-1, 5, 121], "age"), Generalization(bins=edges), "steps[0].generalize")


def test_truncate_and_map() -> None:
    import pandas as pd

    out = generalized(_series(["12345", "9", None]), Generalization(truncate=2), "f")
    assert list(out[:2]) == ["12***", "9"] and pd.isna(out[2])  # missing stays missing
    how = Generalization(map={"Berlin": "DE", "Paris": "FR"}, other="elsewhere")
    assert list(generalized(_series(["Paris", "Rome"]), how, "f")) == ["FR", "elsewhere"]
    assert list(generalized(_series([1, 2]), None, "f")) == ["*", "*"]


def test_bins_on_text_are_one_line() -> None:
    with pytest.raises(DataError, match="bins need numbers, but column 'zip' holds 1 values"):
        generalized(_series(["1", "x"], "zip"), Generalization(width=10), "f")


@pytest.mark.parametrize(
    "options", [{}, {"width": 10, "truncate": 2}, {"bins": [3, 1]}, {"width": 0}, {"bins": [0, float("inf")]}]
)
def test_one_well_formed_kind_is_required(options: dict) -> None:
    from modelyard.privacy import load_config

    with pytest.raises(SpecError) as info:
        load_config({"name": "t", "steps": [{"generalize": {"column": "c", **options}}]})
    assert info.value.message.startswith("Invalid value for `steps[0]")
