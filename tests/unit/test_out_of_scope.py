"""Out-of-scope threshold: the highest that keeps val in-scope accuracy, checked by brute force."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.errors import DataError
from modelyard.out_of_scope import threshold_for


def brute_force(confidence: np.ndarray, correct: np.ndarray, min_accuracy: float) -> float:
    ok = [t for t in np.unique(confidence) if np.mean(correct & (confidence >= t)) >= min_accuracy]
    return float(max(ok))


@pytest.mark.parametrize(("seed", "min_accuracy"), [(0, 0.94), (1, 0.8), (2, 0.5), (3, 0.9)])
def test_threshold_is_the_highest_that_keeps_the_accuracy(seed: int, min_accuracy: float) -> None:
    rng = np.random.default_rng(seed)
    confidence = rng.choice(np.linspace(0.2, 1.0, 40), size=300)  # ties included
    correct = rng.random(300) < 0.97
    t = threshold_for(confidence, correct, min_accuracy)
    assert t == brute_force(confidence, correct, min_accuracy)
    assert np.mean(correct & (confidence >= t)) >= min_accuracy


def test_an_unreachable_accuracy_is_one_line() -> None:
    confidence, correct = np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, True, False, True])
    assert threshold_for(confidence, correct, 0.75) == 0.6
    with pytest.raises(DataError, match=r"`min_accuracy`: expected at most the model's val accuracy 0.7500"):
        threshold_for(confidence, correct, 0.76)
