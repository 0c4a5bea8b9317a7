"""Decoding instances and encoding predictions, against numpy and Predictor.records."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import InvalidInstancesError
from modelyard.serving.codec import encode_predictions, instances_array


def labels_from(probs: np.ndarray) -> list[str]:
    return [["a", "b", "c"][i] for i in probs.argmax(axis=1)]


def test_instances_become_float32_rows_of_the_input_shape() -> None:
    out = instances_array({"instances": [[1, 2.5], [3, 4]]}, [2])
    np.testing.assert_array_equal(out, np.array([[1, 2.5], [3, 4]], dtype=np.float32))
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([[1, 2]], "expected a JSON object"),
        ({"instance": [[1, 2]]}, "unknown key(s) ['instance']"),
        ({}, "Missing field `instances`"),
        ({"instances": []}, "received an empty list"),
        ({"instances": {"a": 1}}, "received a JSON object"),
        ({"instances": [[1, 2, 3]]}, "shape [2] (float32), received 1 instance(s) of shape [3]"),
        ({"instances": [1, 2]}, "received 2 instance(s) of shape []"),
        ({"instances": [[1, 2], [3]]}, "lists of uneven lengths"),
        ({"instances": [["a", "b"]]}, "received strings"),
        ({"instances": [[True, False]]}, "received true/false values"),
        ({"instances": [[1, None]]}, "received mixed or out-of-range values"),
        ({"instances": [[1, 10**30]]}, "received mixed or out-of-range values"),
        ({"instances": [[1, 1e39]]}, "`instances[0]`: expected finite float32 numbers"),
        ({"instances": [[0, 1], [1, float("inf")]]}, "`instances[1]`"),
    ],
)
def test_bad_instances_name_what_was_expected_and_received(payload: object, fragment: str) -> None:
    with pytest.raises(InvalidInstancesError) as info:
        instances_array(payload, [2])
    assert info.value.http_status == 422
    assert fragment in info.value.message


def test_integer_models_refuse_fractional_token_ids() -> None:
    assert instances_array({"instances": [[1, 2]]}, [2], "int64").tolist() == [[1.0, 2.0]]
    with pytest.raises(InvalidInstancesError, match="integer token ids"):
        instances_array({"instances": [[1.5, 2]]}, [2], "int64")


def test_encoding_matches_predictor_records_format() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    records, warnings = encode_predictions(probs, "classification", labels_from)
    assert warnings == []
    assert records == [
        {"label": "b", "probabilities": [float(p) for p in probs[0]]},
        {"label": "a", "probabilities": [float(p) for p in probs[1]]},
    ]
    values = np.array([[1.5, -2.0]], dtype=np.float32)
    assert encode_predictions(values, "regression", labels_from) == ([{"value": [1.5, -2.0]}], [])


def test_non_finite_outputs_become_null_with_a_warning_and_leave_other_instances_intact() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [np.nan, 0.5, 0.5], [0.2, 0.2, 0.6]], dtype=np.float32)
    records, warnings = encode_predictions(probs, "classification", labels_from)
    assert records[1] == {"label": None, "probabilities": [None, 0.5, 0.5]}
    assert records[0]["label"] == "b" and records[2]["label"] == "c"
    assert len(warnings) == 1 and "[1]" in warnings[0]
    values = np.array([[np.inf, 1.0], [2.0, 3.0]], dtype=np.float32)
    records, warnings = encode_predictions(values, "regression", labels_from)
    assert records == [{"value": [None, 1.0]}, {"value": [2.0, 3.0]}] and "[0]" in warnings[0]
