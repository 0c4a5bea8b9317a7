"""Metrics by name (torchmetrics underneath) and ``MetricSet``, which feeds them.

Target ``(opts, *, task, num_classes) -> torchmetrics.Metric``. Class metrics are the
multiclass torchmetrics classes; a binary problem (one sigmoid/BCE output, or a 0/1
regression target such as XOR) is the two-class case, so accuracy, precision, recall,
F1 and the confusion matrix mean the same for one output column or two.

``MetricSet`` turns raw network outputs into what each metric needs, on the device and
without reading values on the host: class labels (argmax, or ``p >= 0.5`` for one
column), class scores [N, C] for top-k, raw values for regression metrics. Logits are
turned into probabilities first when the loss took logits (``activation``).

Result names: ``accuracy``, ``precision``/``recall``/``f1`` (macro average) or
``f1_weighted``/``precision_micro``... for other averages, ``top_<k>_accuracy``,
``confusion_matrix`` (nested list, rows = true class), ``mse``, ``mae``, ``rmse``, ``r2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.components import ComponentRegistry, ComponentSpec, NoOptions
from modelyard.errors import SpecError

if TYPE_CHECKING:
    import torchmetrics

__all__ = ["METRICS", "MetricSet", "metric_name", "metric_names", "AverageOptions", "TopKOptions"]

#: Registry of metrics; target ``(opts, *, task, num_classes) -> torchmetrics.Metric``.
METRICS = ComponentRegistry("metric")

Average = Literal["macro", "weighted", "micro"]
InputKind = Literal["labels", "scores", "values"]


class AverageOptions(StrictModel):
    average: Average = "macro"


class TopKOptions(StrictModel):
    k: int = Field(5, ge=1)


def _classification() -> Any:
    """torchmetrics is imported when a metric is built, not when a spec is read (it costs seconds:
    ``modelyard predict`` and ``models show`` read specs and never compute a metric)."""
    from torchmetrics import classification

    return classification


def _regression() -> Any:
    from torchmetrics import regression

    return regression


def _classes(num_classes: int | None) -> int:
    # No class count (a regression loss on 0/1 targets) or one output: the binary case.
    return num_classes if num_classes is not None and num_classes >= 2 else 2


# validate_args=False: the argument checks read tensor values on the host (a sync on a GPU
# for every update); the data pipeline already guarantees valid class indices.
@METRICS.component("accuracy", "acc", "categorical_accuracy", "binary_accuracy")
def accuracy(opts: NoOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Fraction of samples whose predicted class is the true class."""
    return _classification().MulticlassAccuracy(num_classes=_classes(num_classes), average="micro", validate_args=False)


@METRICS.component("precision", options=AverageOptions, primary="average")
def precision(opts: AverageOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Precision averaged over classes (macro by default, or weighted / micro)."""
    return _classification().MulticlassPrecision(
        num_classes=_classes(num_classes), average=opts.average, validate_args=False
    )


@METRICS.component("recall", options=AverageOptions, primary="average")
def recall(opts: AverageOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Recall averaged over classes (macro by default, or weighted / micro)."""
    return _classification().MulticlassRecall(
        num_classes=_classes(num_classes), average=opts.average, validate_args=False
    )


@METRICS.component("f1", "f1_score", options=AverageOptions, primary="average")
def f1(opts: AverageOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """F1 score averaged over classes (macro by default, or weighted / micro)."""
    return _classification().MulticlassF1Score(
        num_classes=_classes(num_classes), average=opts.average, validate_args=False
    )


@METRICS.component("top_k_accuracy", "top_k", "top_k_categorical_accuracy", options=TopKOptions, primary="k")
def top_k_accuracy(opts: TopKOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Fraction of samples whose true class is among the ``k`` highest scores."""
    classes = _classes(num_classes)
    if opts.k > classes:
        raise SpecError(
            f"Invalid value for metric 'top_k_accuracy' k: expected at most the number of classes ({classes}), "
            f"received {opts.k}",
            field="train.metrics",
        )
    return _classification().MulticlassAccuracy(num_classes=classes, top_k=opts.k, average="micro", validate_args=False)


@METRICS.component("confusion_matrix", "confusion")
def confusion_matrix(opts: NoOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Counts of (true class, predicted class) pairs; rows are the true class."""
    return _classification().MulticlassConfusionMatrix(num_classes=_classes(num_classes), validate_args=False)


@METRICS.component("mse", "mean_squared_error")
def mse(opts: NoOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Mean squared error over every output element."""
    return _regression().MeanSquaredError()


@METRICS.component("mae", "mean_absolute_error")
def mae(opts: NoOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Mean absolute error over every output element."""
    return _regression().MeanAbsoluteError()


@METRICS.component("rmse", "root_mean_squared_error")
def rmse(opts: NoOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Root of the mean squared error, in the target's own unit."""
    return _regression().MeanSquaredError(squared=False)


@METRICS.component("r2", "r2_score", "r_squared")
def r2(opts: NoOptions, *, task: str, num_classes: int | None) -> torchmetrics.Metric:
    """Coefficient of determination, averaged uniformly over outputs (as sklearn's r2_score)."""
    return _regression().R2Score(multioutput="uniform_average")


_INPUT: dict[str, InputKind] = {
    "accuracy": "labels",
    "precision": "labels",
    "recall": "labels",
    "f1": "labels",
    "confusion_matrix": "labels",
    "top_k_accuracy": "scores",
}


def metric_name(spec: ComponentSpec) -> str:
    """The key a metric's value has in results and history (see the module docstring)."""
    if spec.type == "top_k_accuracy":
        return f"top_{spec.options['k']}_accuracy"
    average = spec.options.get("average")
    if average is not None and average != "macro":
        return f"{spec.type}_{average}"
    return spec.type


def metric_names(specs: Sequence[ComponentSpec]) -> list[str]:
    """Result names of ``specs``, in order (to check monitored names before training)."""
    return [metric_name(s) for s in specs]


class MetricSet:
    """Several metrics updated together on the device; ``compute()`` reads them once."""

    def __init__(
        self,
        specs: Sequence[ComponentSpec],
        *,
        task: str,
        num_classes: int | None,
        activation: Literal["sigmoid", "softmax"] | None = None,
        device: torch.device | str | None = None,
        field: str = "train.metrics",
    ) -> None:
        self.activation = activation
        self.num_classes = num_classes
        self._metrics: dict[str, tuple[InputKind, torchmetrics.Metric]] = {}
        for i, spec in enumerate(specs):
            name = metric_name(spec)
            if name in self._metrics:
                raise SpecError(
                    f"Invalid value for `{field}[{i}]`: metric {name!r} is listed twice", field=f"{field}[{i}]"
                )
            if spec.type == "top_k_accuracy" and spec.options["k"] > _classes(num_classes):
                raise SpecError(
                    f"Invalid value for `{field}[{i}].k`: expected at most the number of classes "
                    f"({_classes(num_classes)}), received {spec.options['k']}",
                    field=f"{field}[{i}].k",
                )
            metric = METRICS.build(spec, task=task, num_classes=num_classes)
            if device is not None:
                metric = metric.to(device)
            self._metrics[name] = (_INPUT.get(spec.type, "values"), metric)
        self._updated = False

    @property
    def names(self) -> list[str]:
        return list(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def to(self, device: torch.device | str) -> MetricSet:
        for _, metric in self._metrics.values():
            metric.to(device)
        return self

    def reset(self) -> None:
        for _, metric in self._metrics.values():
            metric.reset()
        self._updated = False

    @torch.no_grad()
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch of network outputs (logits or probabilities) and their targets."""
        if not self._metrics or outputs.shape[0] == 0:
            return
        outputs = outputs.detach().float()
        if self.activation == "sigmoid":
            outputs = outputs.sigmoid()
        elif self.activation == "softmax" and outputs.ndim == 2 and outputs.shape[1] > 1:
            outputs = outputs.softmax(dim=1)
        cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for kind, metric in self._metrics.values():
            if kind not in cache:
                cache[kind] = _inputs(kind, outputs, targets)
            metric.update(*cache[kind])
        self._updated = True

    def compute(self) -> dict[str, float | list]:
        """Every metric's value: floats, and the confusion matrix as a nested list of ints."""
        if not self._updated:
            return {}
        out: dict[str, float | list] = {}
        for name, (_, metric) in self._metrics.items():
            value = metric.compute()
            out[name] = value.tolist() if value.ndim > 0 else float(value)
        return out


def _labels_of_outputs(outputs: torch.Tensor) -> torch.Tensor:
    if outputs.ndim == 1 or outputs.shape[1] == 1:
        return (outputs.reshape(-1) >= 0.5).long()
    return outputs.argmax(dim=1)


def _labels_of_targets(targets: torch.Tensor) -> torch.Tensor:
    if not targets.is_floating_point():
        return targets.reshape(-1).long()
    if targets.ndim == 1 or targets.shape[1] == 1:
        return (targets.reshape(-1) >= 0.5).long()
    return targets.argmax(dim=1)  # one-hot or probability rows


def _inputs(kind: InputKind, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(preds, target) for one kind of metric; shapes noted as [N, C] classes, [N, k] outputs."""
    if kind == "labels":
        return _labels_of_outputs(outputs), _labels_of_targets(targets)
    if kind == "scores":
        scores = outputs.reshape(-1, 1) if outputs.ndim == 1 else outputs
        if scores.shape[1] == 1:  # one probability p of class 1 → scores [1 - p, p]
            scores = torch.cat([1.0 - scores, scores], dim=1)
        return scores, _labels_of_targets(targets)
    # values: regression metrics compare outputs and targets element by element
    if not targets.is_floating_point() and outputs.ndim == 2 and outputs.shape[1] > 1:
        targets = torch.nn.functional.one_hot(targets.reshape(-1).long(), outputs.shape[1])
    targets = targets.float()
    if targets.shape != outputs.shape and targets.numel() == outputs.numel():
        targets = targets.reshape(outputs.shape)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return outputs.reshape(-1), targets.reshape(-1)
    return outputs, targets
