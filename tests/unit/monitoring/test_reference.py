"""The training reference written at registration (reference.safetensors), checked against numpy and torch."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from modelyard import workflow
from modelyard.data import prepare
from modelyard.monitoring.reference import MAX_FEATURES, REFERENCE_FILE, load_reference, reduce_features
from modelyard.predict import Predictor
from modelyard.spec import load_spec
from modelyard.store import ModelStore
from tests.support.console import DIGITS


def test_registration_stores_feature_statistics_and_held_out_softmax_outputs() -> None:
    result = workflow.train({**DIGITS, "name": "ref"}, progress=False)
    version = ModelStore().get("ref:1")
    assert (version.path / REFERENCE_FILE).is_file()
    ref = load_reference(version)
    assert ref is not None
    spec = load_spec({**DIGITS, "name": "ref"})
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed)
    train = prepared.train.x.numpy()
    np.testing.assert_allclose(ref.minimum.numpy(), train.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(ref.maximum.numpy(), train.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(ref.quantiles.numpy()[50], np.quantile(train, 0.5, axis=0), rtol=1e-5, atol=1e-6)
    assert ref.missing_rate.sum() == 0
    assert ref.sample.shape == (1000, 64) and len(train) > 1000  # digits: 64 columns, a sample of the rows
    rows = {tuple(r) for r in train.tolist()}
    assert all(tuple(r) in rows for r in ref.sample.numpy().tolist())
    # the outputs are the served model's probabilities on held-out (test split) instances
    predictor = Predictor.load("ref:1")
    np.testing.assert_allclose(ref.outputs.numpy(), predictor.predict_tensor(prepared.test.x).numpy(), atol=1e-6)
    assert ref.meta["output_rows"] == len(prepared.test) and result.model_ref == "ref:1"
    assert set(load_file(str(version.path / REFERENCE_FILE))) >= {"sample", "quantiles", "outputs"}


def test_images_are_reduced_by_average_pooling_to_a_fixed_number_of_columns() -> None:
    x = torch.rand(5, 1, 28, 28)
    reduced = reduce_features(x)
    flat = x.reshape(5, -1)
    expected = torch.nn.functional.adaptive_avg_pool1d(flat[:, None], MAX_FEATURES)[:, 0]
    assert reduced.shape == (5, MAX_FEATURES)
    torch.testing.assert_close(reduced, expected)
    # each column is the mean of a contiguous run of pixels (the first: pixels 0..12 of 784)
    torch.testing.assert_close(reduced[:, 0], flat[:, :13].mean(dim=1))
