"""prepare(): limits, deterministic (stratified) splits, fitting on train only, tensor forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelyard.data import Pipeline, Prepared, Split, prepare
from modelyard.data.split import holdout
from modelyard.errors import DataError
from modelyard.spec import DataSpec

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _prepare(data: dict, task: str = "classification", seed: int = 0) -> Prepared:
    return prepare(DataSpec.model_validate(data), task=task, seed=seed)  # type: ignore[arg-type]


def test_digits_split_sizes_types_and_stratification() -> None:
    p = _prepare({"source": "digits", "test": 0.2, "validation": 0.1, "preprocess": ["scale"]})
    n_test = int(np.ceil(0.2 * 1797))
    n_val = int(np.ceil(0.1 * (1797 - n_test)))
    assert p.test is not None and p.val is not None
    assert (len(p.train), len(p.val), len(p.test)) == (1797 - n_test - n_val, n_val, n_test)
    for split in (p.train, p.val, p.test):
        assert isinstance(split, Split) and split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.is_contiguous() and split.y.shape == (len(split),)
    assert p.num_classes == 10 and p.input_shape == (64,) and p.kind == "tabular"
    assert p.train.x.max() == 1.0  # scale by the training max, 16
    # Stratified: each class's share of the test split is within one sample of its share overall.
    overall = np.bincount(np.concatenate([p.train.y, p.val.y, p.test.y])) / 1797
    np.testing.assert_allclose(np.bincount(p.test.y.numpy()) / n_test, overall, atol=1.5 / n_test)


def test_split_is_deterministic_per_seed() -> None:
    spec = {"source": "digits", "validation": 0.2}
    a, b, c = _prepare(spec, seed=7), _prepare(spec, seed=7), _prepare(spec, seed=8)
    assert a.test is not None and a.val is not None and c.test is not None
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.val.y, b.val.y) and torch.equal(a.train.x, b.train.x)
    assert not torch.equal(a.test.x, c.test.x)


def test_holdout_without_labels_and_too_small() -> None:
    kept, held = holdout(10, 0.25, seed=0)
    assert len(held) == 3 and len(kept) == 7 and sorted(np.concatenate([kept, held])) == list(range(10))
    with pytest.raises(DataError, match=r"`data.test`.*1 sample\(s\)"):
        holdout(1, 0.2, seed=0)


def test_fitted_on_train_only() -> None:
    spec = {"source": "linear", "n": 200, "features": 3, "validation": 0.25}
    raw = _prepare(spec, task="regression")
    std = _prepare({**spec, "preprocess": ["standardize"]}, task="regression")
    assert raw.val is not None and std.val is not None and std.test is not None
    train = raw.train.x.numpy().astype(np.float64)
    mean, sd = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(std.train.x.numpy(), (train - mean) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std.val.x.numpy(), (raw.val.x.numpy() - mean) / sd, rtol=1e-5, atol=1e-5)
    # The validation split's own statistics differ from the train-fitted ones.
    assert np.abs(std.val.x.numpy().mean(axis=0)).max() > 1e-3
    np.testing.assert_allclose(std.train.x.numpy().mean(axis=0), 0, atol=1e-5)


def test_xor_has_no_test_split() -> None:
    p = _prepare({"source": "xor"})
    assert len(p.train) == 4 and p.test is None and p.val is None
    assert p.train.y.tolist() == [0, 1, 1, 0] and p.train.y.dtype == torch.int64 and p.num_classes == 2
    explicit = _prepare({"source": {"xor": 5}, "test": 0.25})
    assert explicit.test is not None and len(explicit.test) == 5


def test_linear_textbook_regression_targets() -> None:
    p = _prepare({"source": "linear", "x": [[1, 1], [1, 2], [2, 1], [2, 2]], "y": [1, 2, 2, 3]}, task="regression")
    assert p.test is None and p.train.y.shape == (4, 1) and p.train.y.dtype == torch.float32
    p10 = _prepare({"source": "linear", "n": 50, "features": 10, "outputs": 10}, task="regression")
    assert p10.train.y.shape == (40, 10) and p10.num_classes is None and p10.input_shape == (10,)


def test_classification_with_continuous_targets_is_refused() -> None:
    with pytest.raises(DataError, match="whole-number class labels.*regression loss"):
        _prepare({"source": "linear", "n": 20}, task="classification")


def test_one_hot_targets_and_csv_classes(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 7, "kind": ["x", "y", "z"] * 10})
    frame.to_csv(tmp_path / "t.csv", index=False)
    p = _prepare(
        {"source": "csv", "path": str(tmp_path / "t.csv"), "target": "kind", "preprocess": ["standardize", "one_hot"]}
    )
    assert p.class_names == ["x", "y", "z"] and p.num_classes == 3 and p.feature_names == ["a", "b"]
    assert p.train.y.dtype == torch.float32 and p.train.y.shape == (24, 3)
    assert torch.equal(p.train.y.sum(dim=1), torch.ones(24))


def test_nan_in_npz_features_is_a_data_error(tmp_path: Path) -> None:
    x = np.ones((5, 2))
    x[3, 1] = np.inf
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5))
    with pytest.raises(DataError, match="sample 3, feature 1"):
        _prepare({"source": "npz", "path": str(tmp_path / "d.npz")})


def test_sequence_ids_become_int64_tensors(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.arange(40).reshape(10, 4), y=np.arange(10) % 2)
    p = _prepare({"source": "npz", "path": str(tmp_path / "d.npz"), "kind": "sequence", "test": 0.2})
    assert p.train.x.dtype == torch.int64 and p.test is not None and p.test.x.dtype == torch.int64
    assert p.pipeline.integer_ids


def test_too_few_samples_for_validation() -> None:
    with pytest.raises(DataError, match="`data.validation`"):
        _prepare({"source": "xor", "limit": 1, "validation": 0.5})


@pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_limit_reshape_and_official_test() -> None:
    spec = {
        "source": "fashion-mnist",
        "limit": 600,
        "validation": 0.1,
        "preprocess": ["scale", {"reshape": [1, 28, 28]}],
    }
    p = _prepare(spec)
    assert p.val is not None and p.test is not None
    assert (len(p.train), len(p.val), len(p.test)) == (540, 60, 100)  # the test set shrinks in proportion
    assert p.train.x.shape == (540, 1, 28, 28) and p.input_shape == (1, 28, 28) and p.kind == "image"
    assert 0.0 <= float(p.train.x.min()) and float(p.train.x.max()) <= 1.0
    assert p.class_names is not None and p.class_names[0] == "T-shirt/top" and p.num_classes == 10
    assert p.pipeline.raw_input_shape == (784,)


def test_prepared_again_for_a_stored_pipeline_transforms_every_split_with_it(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    from tests.support.text_models import intents_file

    path = intents_file(tmp_path)
    data = {
        "source": {"jsonl": str(path), "target": "label", "text": "text"},
        "validation": 0.2,
        "preprocess": [{"tokenize": None, "max_length": 12, "vocab_size": 120, "min_frequency": 1}],
    }
    first = _prepare(data)
    assert not first.data_changed
    stored = Pipeline.from_state(first.pipeline.state_dict())  # as a registered version holds it
    again = prepare(DataSpec.model_validate(data), task="classification", seed=0, stored=stored)
    # A re-trained WordPiece tokenizer need not give the same ids; the stored one does, on every split.
    assert again.pipeline is stored and not again.data_changed
    for mine, theirs in ((again.train, first.train), (again.val, first.val), (again.test, first.test)):
        assert mine is not None and theirs is not None
        torch.testing.assert_close(mine.x, theirs.x, rtol=0, atol=0)
        torch.testing.assert_close(mine.y, theirs.y, rtol=0, atol=0)
    # Texts changed since (in every split): the fresh fit is kept and the change is reported.
    path.write_text(path.read_text().replace("bank balance", "bank balances"))
    changed = prepare(DataSpec.model_validate(data), task="classification", seed=0, stored=stored)
    assert changed.data_changed and changed.pipeline is not stored


def test_a_deterministic_pipeline_prepared_again_matches_its_stored_state() -> None:
    data = {"source": "digits", "preprocess": ["standardize"]}
    first = _prepare(data)
    stored = Pipeline.from_state(first.pipeline.state_dict())
    again = prepare(DataSpec.model_validate(data), task="classification", seed=0, stored=stored)
    assert again.pipeline is stored and not again.data_changed
    assert again.test is not None and first.test is not None
    torch.testing.assert_close(again.test.x, first.test.x, rtol=0, atol=0)
    other = prepare(DataSpec.model_validate(data), task="classification", seed=1, stored=stored)  # another split
    assert other.data_changed and other.pipeline is not stored
