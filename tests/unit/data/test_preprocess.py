"""Preprocessing steps against numpy/scikit-learn references, and the Pipeline's state."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from modelyard.components import ComponentSpec
from modelyard.data import PREPROCESSORS, Pipeline
from modelyard.errors import DataError, InputError, SpecError


def _steps(*raw: Any) -> list[ComponentSpec]:
    return [PREPROCESSORS.parse(r, field=f"data.preprocess[{i}]") for i, r in enumerate(raw)]


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, 5)) * [1, 10, 100, 0.1, 0] + [0, 5, -3, 1, 7]).astype(np.float32)
    return x[:30], x[30:]


def test_standardize_equals_sklearn_fitted_on_train(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, val = data
    pipe = Pipeline.fit(_steps("standardize"), train, task="regression")
    ref = StandardScaler().fit(train.astype(np.float64))
    np.testing.assert_allclose(pipe.transform_x(train), ref.transform(train), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pipe.transform_x(val), ref.transform(val), rtol=1e-5, atol=1e-5)
    out = pipe.transform_x(train)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, :4].std(axis=0), 1, atol=1e-5)
    assert np.all(out[:, 4] == 0)  # constant feature: std 0 → divide by 1
    # Statistics come from train only: the held-out rows are not exactly centred.
    assert np.abs(pipe.transform_x(val).mean(axis=0)[:4]).max() > 1e-3


def test_normalize_equals_sklearn_minmax(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, val = data
    pipe = Pipeline.fit(_steps("normalize"), train, task="regression")
    ref = MinMaxScaler().fit(train.astype(np.float64))
    np.testing.assert_allclose(pipe.transform_x(val), ref.transform(val), rtol=1e-5, atol=1e-5)
    out = pipe.transform_x(train)
    np.testing.assert_allclose(out[:, :4].min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(out[:, :4].max(axis=0), 1, atol=1e-6)


def test_standardize_per_channel_and_all() -> None:
    x = np.random.default_rng(1).normal(size=(6, 3, 4, 4)).astype(np.float32) * [[[1]], [[2]], [[3]]]
    per_channel = Pipeline.fit(_steps({"standardize": {"per": "channel"}}), x, kind="image")
    mean = x.astype(np.float64).mean(axis=(0, 2, 3), keepdims=True)
    std = x.astype(np.float64).std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(per_channel.transform_x(x), (x - mean) / std, rtol=1e-5, atol=1e-5)
    whole = Pipeline.fit(_steps({"standardize": {"per": "all"}}), x, kind="image")
    np.testing.assert_allclose(whole.transform_x(x), (x - x.mean()) / x.std(), rtol=1e-4, atol=1e-4)
    with pytest.raises(DataError, match=r"`data.preprocess\[0\].per`.*\[C, H, W\]"):
        Pipeline.fit(_steps({"standardize": {"per": "channel"}}), x.reshape(6, -1))


def test_scale_default_factor_rule() -> None:
    pixels = np.array([[0, 100, 200]], dtype=np.float32)
    image = Pipeline.fit(_steps("scale"), pixels, kind="image")
    np.testing.assert_allclose(image.transform_x(pixels), pixels / 255)
    table = Pipeline.fit(_steps("scale"), np.array([[1, -4], [2, 3]], np.float32), kind="tabular")
    assert table.state_dict()["steps"][0]["state"] == {"factor": 4.0}
    explicit = Pipeline.fit(_steps({"scale": 16}), pixels, kind="image")
    np.testing.assert_allclose(explicit.transform_x(pixels), pixels / 16)


def test_reshape_validates_size_and_infers_minus_one() -> None:
    x = np.zeros((2, 784), np.float32)
    pipe = Pipeline.fit(_steps({"reshape": [1, 28, 28]}), x)
    assert pipe.input_shape == (1, 28, 28) and pipe.raw_input_shape == (784,)
    assert pipe.transform_x(x).shape == (2, 1, 28, 28)
    assert Pipeline.fit(_steps({"reshape": [1, -1, 28]}), x).input_shape == (1, 28, 28)
    with pytest.raises(DataError, match=r"`data.preprocess\[0\].shape`.*784 values.*\[1, 28, 27\]"):
        Pipeline.fit(_steps({"reshape": [1, 28, 27]}), x)
    with pytest.raises(SpecError):
        _steps({"reshape": [0, 28]})


def test_one_hot_targets() -> None:
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 2, 1, 2])
    pipe = Pipeline.fit(_steps("one_hot"), x, y, task="classification", num_classes=3)
    out = pipe.transform_y(y)
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[y])
    assert out.dtype == np.float32
    with pytest.raises(DataError, match="one_hot.*regression"):
        Pipeline.fit(_steps("one_hot"), x, y.astype(np.float32), task="regression")
    with pytest.raises(DataError, match="0..1, received 2"):
        Pipeline.fit(_steps({"one_hot": 2}), x, y, task="classification")


def test_transform_y_canonical_forms() -> None:
    x = np.zeros((3, 1), np.float32)
    clf = Pipeline.fit([], x, task="classification", num_classes=3, class_names=["a", "b", "c"])
    np.testing.assert_array_equal(clf.transform_y([[0.0], [2.0], [1.0]]), [0, 2, 1])
    np.testing.assert_array_equal(clf.transform_y(["c", "a"]), [2, 0])
    with pytest.raises(DataError, match="whole-number"):
        clf.transform_y([0.5, 1.0])
    with pytest.raises(DataError, match="unknown class labels"):
        clf.transform_y(["zebra"])
    reg = Pipeline.fit([], x, task="regression")
    out = reg.transform_y([1, 2, 3])
    assert out.dtype == np.float32 and out.shape == (3, 1)


def test_state_dict_round_trip_is_exact(data: tuple[np.ndarray, np.ndarray]) -> None:
    train, val = data
    x = np.concatenate([train, train[:, :3]], axis=1)  # 8 features
    steps = _steps("standardize", {"scale": 3.0}, "normalize", {"reshape": [2, 4]}, "one_hot")
    y = np.arange(len(x)) % 3
    pipe = Pipeline.fit(
        steps, x, y, task="classification", num_classes=3, class_names=["a", "b", "c"], feature_names=list("abcdefgh")
    )
    state = json.loads(json.dumps(pipe.state_dict()))
    again = Pipeline.from_state(state)
    probe = np.concatenate([val, val[:, :3]], axis=1) * 1.7
    np.testing.assert_array_equal(again.transform_x(probe), pipe.transform_x(probe))
    np.testing.assert_array_equal(again.transform_y(y), pipe.transform_y(y))
    assert again.input_shape == (2, 4) and again.raw_input_shape == (8,)
    assert again.class_names == ["a", "b", "c"] and again.feature_names == list("abcdefgh")
    assert again.state_dict() == state


def test_from_state_rejects_bad_state() -> None:
    with pytest.raises(DataError, match="format"):
        Pipeline.from_state({"steps": []})
    with pytest.raises(DataError, match="Invalid preprocessing state"):
        Pipeline.from_state({"format": 1, "steps": [{"type": "scale", "options": {}, "state": {}}]})


def test_transform_x_validates_raw_input() -> None:
    pipe = Pipeline.fit(_steps("scale"), np.ones((3, 784), np.float32), kind="image")
    assert pipe.transform_x(np.ones(784)).shape == (1, 784)  # one sample becomes a batch of one
    with pytest.raises(InputError, match=r"expected input of shape \[784\] \(or N×784\), received \[5, 783\]"):
        pipe.transform_x(np.ones((5, 783)))
    bad = np.ones((2, 784))
    bad[1, 3] = np.nan
    with pytest.raises(InputError, match="NaN or infinite.*sample 1"):
        pipe.transform_x(bad)
    with pytest.raises(InputError, match="expected numbers"):
        pipe.transform_x(np.array(["a"] * 784))


def test_unknown_step_and_option_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="did you mean 'standardize'"):
        _steps("standardise_it")
    with pytest.raises(SpecError, match="factor"):
        _steps({"scale": -1})
