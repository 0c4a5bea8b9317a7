"""Metrics against scikit-learn on random predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from modelyard.errors import SpecError
from modelyard.metrics import METRICS, MetricSet, metric_name
from modelyard.spec import TrainSpec

C = 5


def specs(*raw):
    return [METRICS.parse(r, field="train.metrics") for r in raw]


@pytest.fixture
def multiclass():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, C, generator=g)
    target = torch.randint(0, C, (200,), generator=g)
    return logits, target


def compute(raw, outputs, targets, *, num_classes=C, activation=None, task="classification", chunks=3):
    ms = MetricSet(specs(*raw), task=task, num_classes=num_classes, activation=activation)
    for o, t in zip(outputs.chunk(chunks), targets.chunk(chunks)):  # several updates, like the loop
        ms.update(o, t)
    return ms.compute()


def test_classification_metrics_match_sklearn(multiclass):
    logits, target = multiclass
    pred = logits.argmax(1).numpy()
    y = target.numpy()
    raw = [
        "accuracy",
        "precision",
        "recall",
        "f1",
        {"precision": "weighted"},
        {"recall": "micro"},
        {"f1": "weighted"},
        {"f1": "micro"},
        "confusion_matrix",
    ]
    out = compute(raw, logits, target, activation="softmax")
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert out["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro", zero_division=0))
    assert out["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert out["precision_weighted"] == pytest.approx(skm.precision_score(y, pred, average="weighted", zero_division=0))
    assert out["recall_micro"] == pytest.approx(skm.recall_score(y, pred, average="micro"))
    assert out["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert out["f1_micro"] == pytest.approx(skm.f1_score(y, pred, average="micro"))
    assert out["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=list(range(C))).tolist()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_matches_sklearn(multiclass, k):
    logits, target = multiclass
    out = compute([{"top_k_accuracy": k}], logits, target)
    assert out[f"top_{k}_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(target.numpy(), logits.numpy(), k=k, labels=list(range(C)))
    )


def test_one_hot_targets_are_converted_to_indices(multiclass):
    logits, target = multiclass
    one_hot = torch.nn.functional.one_hot(target, C).float()
    raw = ["accuracy", "f1", {"top_k": 2}]
    assert compute(raw, logits, one_hot) == compute(raw, logits, target)


def test_binary_logits_one_column_with_sigmoid():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(100, 1, generator=g) * 0.3  # many logits inside [0, 1]: must still be logits
    target = torch.randint(0, 2, (100, 1), generator=g).float()
    pred = (torch.sigmoid(logits) >= 0.5).long().numpy().ravel()
    y = target.long().numpy().ravel()
    out = compute(
        ["accuracy", "f1", "confusion_matrix", {"top_k": 1}], logits, target, num_classes=2, activation="sigmoid"
    )
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert out["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert out["top_1_accuracy"] == pytest.approx(out["accuracy"])


def test_binary_probabilities_and_regression_outputs_threshold_at_half():
    # XOR-style: a tanh/MSE network's outputs, 0/1 float targets, no class count.
    outputs = torch.tensor([[0.1], [0.7], [0.49], [-0.2], [1.1]])
    target = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]])
    out = compute(["accuracy"], outputs, target, num_classes=None, task="regression", chunks=1)
    assert out["accuracy"] == pytest.approx(0.8)


def test_regression_metrics_match_sklearn():
    g = torch.Generator().manual_seed(2)
    target = torch.randn(120, 3, generator=g)
    outputs = target + 0.5 * torch.randn(120, 3, generator=g)
    out = compute(["mse", "mae", "rmse", "r2"], outputs, target, num_classes=None, task="regression")
    y, p = target.numpy(), outputs.numpy()
    assert out["mse"] == pytest.approx(skm.mean_squared_error(y, p), rel=1e-5)
    assert out["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-5)
    assert out["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-5)
    assert out["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-5)
    # one output column with [N] targets
    one = compute(["r2", "mse"], outputs[:, :1], target[:, 0], num_classes=None, task="regression")
    assert one["r2"] == pytest.approx(skm.r2_score(y[:, 0], p[:, 0]), rel=1e-5)


def test_names_aliases_and_errors():
    assert [metric_name(s) for s in specs("acc", {"f1": "weighted"}, {"top_k": 3}, "top_k_accuracy", "r2_score")] == [
        "accuracy",
        "f1_weighted",
        "top_3_accuracy",
        "top_5_accuracy",
        "r2",
    ]
    spec = TrainSpec.model_validate({"loss": "cross_entropy", "metrics": ["accuracy", {"f1": {"average": "weighted"}}]})
    assert [m.type for m in spec.metrics] == ["accuracy", "f1"]
    with pytest.raises(SpecError, match="did you mean 'accuracy'"):
        TrainSpec.model_validate({"loss": "mse", "metrics": ["acuracy"]})
    with pytest.raises(SpecError, match=r"train\.metrics\[0\]\.average"):
        TrainSpec.model_validate({"loss": "mse", "metrics": [{"f1": "samples"}]})
    with pytest.raises(SpecError, match=r"train\.metrics\[1\].*listed twice"):
        MetricSet(specs("f1", {"f1": "macro"}), task="classification", num_classes=3)
    with pytest.raises(SpecError, match=r"train\.metrics\[0\]\.k.*at most the number of classes \(3\), received 5"):
        MetricSet(specs("top_k"), task="classification", num_classes=3)


def test_compute_before_update_is_empty_and_reset_clears(multiclass):
    logits, target = multiclass
    ms = MetricSet(specs("accuracy"), task="classification", num_classes=C)
    assert ms.compute() == {}
    ms.update(logits, target)
    assert ms.compute()["accuracy"] == pytest.approx(skm.accuracy_score(target, logits.argmax(1)))
    ms.reset()
    assert ms.compute() == {}
    ms.update(logits[:10], target[:10])
    assert ms.compute()["accuracy"] == pytest.approx(skm.accuracy_score(target[:10], logits[:10].argmax(1)))
