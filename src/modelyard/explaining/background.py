"""Reference rows for SHAP and LIME: a seeded sample of the model's own training split.

The split is re-created from the stored spec exactly as ``modelyard.evaluation`` does it
(same source, same seed, same split, the stored preprocessing); if a refitted preprocessing
differs from the stored one, the data changed since training and a background drawn from it would
describe some other data set, so the request is refused with a way out (pass
``background=`` explicitly).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.errors import DataError, InputError, SpecError
from modelyard.predict import Predictor

__all__ = ["training_sample", "given_sample", "SAMPLE_SIZE"]

#: Rows kept: LIME uses all of them for its feature statistics, SHAP the first SHAP_ROWS.
SAMPLE_SIZE = 1000


def training_sample(predictor: Predictor, *, size: int = SAMPLE_SIZE) -> np.ndarray:
    """Up to ``size`` random rows of the training split, in model-input form ``(n, F)``."""
    from modelyard.data import prepare

    spec = predictor.spec
    # Tensors, not streams; the split through the model's own stored preprocessing (its token ids).
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed, in_memory=True, stored=predictor.pipeline)
    if prepared.data_changed:
        raise DataError(
            f"The data of model {predictor.ref} changed since it was trained (its preprocessing no longer "
            f"matches), so its training split cannot serve as the background; pass background= explicitly",
            field="background",
        )
    x = prepared.train.x
    # Its own generator: seeded by the spec, so the same model always gets the same rows.
    rng = np.random.default_rng(spec.seed)
    rows = rng.permutation(len(x))[:size]
    return x[rows].reshape(len(rows), -1).double().numpy()


def given_sample(predictor: Predictor, raw: Any, *, size: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """Caller-supplied raw reference rows, preprocessed like the model's inputs ``(n, F)``."""
    try:
        features = predictor.preprocess(raw)
    except InputError as exc:
        raise SpecError(f"Invalid value for `background`: {exc.message}", field="background") from None
    rows = features.reshape(len(features), -1).double().cpu().numpy()
    if len(rows) > size:
        rows = rows[np.random.default_rng(seed).permutation(len(rows))[:size]]
    return rows
