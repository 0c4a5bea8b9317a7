"""Built-in sources without files: xor, linear, digits; the source registry."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.data import SOURCES, RawData, load_source
from modelyard.errors import DataError, SpecError
from modelyard.spec import DataSpec


def _raw(data: dict, seed: int = 0) -> RawData:
    return load_source(DataSpec.model_validate(data).source, seed=seed)


def test_registry_lists_builtin_sources() -> None:
    assert {"xor", "linear", "digits", "mnist", "fashion_mnist", "csv", "parquet", "npz", "images"} <= set(
        SOURCES.names()
    )


def test_unknown_source_is_spec_error_with_hint() -> None:
    with pytest.raises(SpecError, match="did you mean 'fashion_mnist'"):
        DataSpec.model_validate({"source": "fashion-mnst"})


def test_unknown_source_option_is_spec_error() -> None:
    with pytest.raises(SpecError, match="noize"):
        DataSpec.model_validate({"source": "linear", "noize": 0.1})


def test_xor_points_and_repeat() -> None:
    raw = _raw({"source": "xor"})
    np.testing.assert_array_equal(raw.x_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(raw.y_train, [[0], [1], [1], [0]])
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.float32
    assert raw.x_test is None and raw.holdout is False
    raw = _raw({"source": {"xor": 3}})
    assert raw.x_train.shape == (12, 2)
    np.testing.assert_array_equal(raw.y_train[:, 0], np.logical_xor(raw.x_train[:, 0], raw.x_train[:, 1]))


def test_linear_textbook_data_is_used_as_given() -> None:
    raw = _raw({"source": "linear", "x": [[1, 1], [1, 2], [2, 1], [2, 2]], "y": [1, 2, 2, 3]})
    np.testing.assert_array_equal(raw.x_train, [[1, 1], [1, 2], [2, 1], [2, 2]])
    np.testing.assert_array_equal(raw.y_train, [[1], [2], [2], [3]])
    assert raw.y_train.dtype == np.float32 and raw.holdout is False


def test_linear_explicit_theta_without_noise_is_exact() -> None:
    raw = _raw({"source": "linear", "n": 50, "features": 3, "theta": [1.0, -2.0, 0.5], "bias": 4.0, "noise": 0})
    expected = raw.x_train.astype(np.float64) @ np.array([[1.0], [-2.0], [0.5]]) + 4.0
    np.testing.assert_allclose(raw.y_train, expected, rtol=1e-5, atol=1e-5)


def test_linear_is_deterministic_per_seed_and_recoverable() -> None:
    spec = {"source": "linear", "n": 400, "features": 4, "noise": 0.01}
    a, b, c = _raw(spec, seed=1), _raw(spec, seed=1), _raw(spec, seed=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)
    # Least squares recovers a linear map that explains y up to the noise.
    theta, *_ = np.linalg.lstsq(a.x_train, a.y_train, rcond=None)
    residual = a.y_train - a.x_train @ theta
    assert residual.std() < 0.02


def test_linear_multi_output_for_10_20_10_regression() -> None:
    raw = _raw({"source": "linear", "n": 64, "features": 10, "outputs": 10, "nonlinearity": "tanh"})
    assert raw.x_train.shape == (64, 10) and raw.y_train.shape == (64, 10)
    assert raw.feature_names == [f"x{i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"features": 3, "theta": [1.0, 2.0]}, "theta"),
        ({"features": 2, "outputs": 2, "theta": [[1.0, 2.0]]}, "theta"),
        ({"x": [[1, 2], [3]]}, "equally long"),
        ({"x": [[1, 2], [3, 4]], "y": [1, 2, 3]}, "one value"),
        ({"y": [1, 2]}, "needs `x`"),
        ({"x": [[1, 2]], "features": 3}, "features"),
    ],
)
def test_linear_bad_options_are_spec_errors(options: dict, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        DataSpec.model_validate({"source": "linear", **options})


def test_digits_matches_sklearn() -> None:
    from sklearn.datasets import load_digits

    raw = _raw({"source": "digits"})
    ref = load_digits()
    assert raw.x_train.shape == (1797, 64) and raw.x_train.dtype == np.float32
    np.testing.assert_array_equal(raw.x_train, ref.data)
    np.testing.assert_array_equal(raw.y_train, ref.target)
    assert raw.y_train.dtype == np.int64 and raw.class_names == [str(i) for i in range(10)]
    assert raw.x_train.max() == 16


def test_raw_data_rejects_mismatched_arrays() -> None:
    with pytest.raises(DataError, match="3 samples .* 2 targets"):
        RawData(x_train=np.zeros((3, 2), np.float32), y_train=np.zeros(2))
    with pytest.raises(DataError, match="empty"):
        RawData(x_train=np.zeros((0, 2), np.float32), y_train=np.zeros(0))
