"""``modelyard.compress``: a registered model → a smaller or faster new version, measured and recorded.

One operation per call: ``quantize="int8"``, ``prune=FRACTION`` (``structured``,
``finetune``) or ``distill=STUDENT_SPEC`` (``temperature``, ``alpha``). The new version
is registered under the parent's name (or ``name``) with lineage ``{"parent",
"operation", "options", "metrics_before", "metrics_after"}``, a ``compression.json``
describing what was done, and the before/after table in its metrics. It is then loaded
back from the store and must predict exactly what the in-memory network predicted.

An int8 version also stores its ONNX Runtime int8 graph (``model.int8.onnx``) when that graph
predicts the same class as the torch int8 model on at least 97% of the parent's test split;
the check is recorded in ``compression.json`` and the serving backend runs that graph.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modelyard.compression import operations as ops
from modelyard.compression.loading import COMPRESSION_FILE, FORMAT, INT8_ONNX_FILE
from modelyard.compression.measure import Measured
from modelyard.compression.onnx_int8 import checked_int8_graph
from modelyard.compression.report import (
    markdown_table,
    measure_pair,
    onnx_graph,
    served_summary,
    speedups,
)
from modelyard.data import Prepared, prepare
from modelyard.errors import DataError, StoreError, UsageError
from modelyard.predict import Predictor
from modelyard.store import ModelStore
from modelyard.store.records import WEIGHTS_FILE
from modelyard.store.refs import check_name
from modelyard.version_summary import summarize
from modelyard.workflow import eval_split

__all__ = ["CompressResult", "compress", "parent_data"]

log = logging.getLogger(__name__)

# A common middle ground; on the Fashion-MNIST MLP every T from 1 to 8 and alpha from 0.25 to 0.9
# ended within half a point of the same student trained alone (docs/compression.md).
DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.5


@dataclass
class CompressResult:
    """The new version, what was done, and the measured rows (parent, child[, baseline])."""

    model_ref: str
    parent_ref: str
    operation: str
    options: dict[str, Any]
    rows: list[Measured]
    speedup: dict[str, float] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """The before/after table as markdown."""
        return markdown_table(self.rows)

    def served(self) -> str:
        """Which engine ``auto`` serves parent and child with, and the speed-up as served."""
        return served_summary(self.rows[0], self.rows[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_ref,
            "parent": self.parent_ref,
            "operation": self.operation,
            "options": self.options,
            "rows": [r.to_dict() for r in self.rows],
            "speedup": self.speedup,
        }


def parent_data(parent: Predictor) -> Prepared:
    """The parent's data re-created with its seed; refused if its preprocessing no longer matches."""
    spec = parent.spec
    # Tensors, not streams; every split through the parent's own stored preprocessing.
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed, in_memory=True, stored=parent.pipeline)
    if prepared.data_changed:
        raise DataError(
            f"The data of model {parent.ref} changed since it was trained (its preprocessing no longer "
            f"matches); it cannot be fine-tuned, calibrated or evaluated on it"
        )
    return prepared


def _operation(quantize: str | None, prune: float | None, distill: Any, extras: dict[str, Any]) -> str:
    """The one operation asked for; options that belong to another operation are refused, not ignored."""
    chosen = [
        name for name, value in (("quantize", quantize), ("prune", prune), ("distill", distill)) if value is not None
    ]
    if len(chosen) != 1:
        got = ", ".join(f"--{c}" for c in chosen) or "none"
        raise UsageError(
            f"Invalid compression request: expected exactly one of --quantize, --prune, --distill, received {got}",
            field="operation",
        )
    for option, (owner, value) in extras.items():
        if value and owner != chosen[0]:
            raise UsageError(
                f"Invalid option `--{option}`: it goes with --{owner}, received it with --{chosen[0]}",
                field=f"--{option}",
            )
    return chosen[0]


def compress(
    ref: str,
    *,
    quantize: str | None = None,
    prune: float | None = None,
    structured: bool = False,
    finetune: int = 0,
    distill: str | Path | dict[str, Any] | None = None,
    temperature: float | None = None,
    alpha: float | None = None,
    baseline: bool = True,
    name: str | None = None,
    home: str | Path | None = None,
    progress: bool = False,
    rounds: int = 20,
) -> CompressResult:
    """Compress model ``ref`` and register the result as a new version (see the module docstring).

    ``temperature`` and ``alpha`` default to 2.0 and 0.5 for ``distill``; ``structured``,
    ``finetune``, ``temperature`` and ``alpha`` given with another operation are refused.
    """
    operation = _operation(
        quantize,
        prune,
        distill,
        {
            "structured": ("prune", structured),
            "finetune": ("prune", finetune),
            "temperature": ("distill", temperature is not None),
            "alpha": ("distill", alpha is not None),
        },
    )
    if name is not None:
        check_name(name, "--name")
    parent = Predictor.load(ref, home=home)
    prepared = parent_data(parent)
    split_name, test = eval_split(prepared)
    if operation == "quantize":
        outcome = ops.quantize(parent, prepared, dtype=str(quantize))
    elif operation == "prune":
        outcome = ops.prune(
            parent, prepared, fraction=prune, structured=structured, finetune=finetune, progress=progress
        )  # type: ignore[arg-type]
    else:
        outcome = ops.distill(
            parent,
            prepared,
            student=distill,
            temperature=DEFAULT_TEMPERATURE if temperature is None else temperature,
            alpha=DEFAULT_ALPHA if alpha is None else alpha,
            baseline=baseline,
            name=name,
            progress=progress,
        )
    num_classes = prepared.num_classes
    before = ops.test_metrics(parent.network, parent.spec, test, num_classes)
    after = ops.test_metrics(outcome.network, outcome.spec, test, num_classes)
    mode = outcome.options.get("mode") if operation == "quantize" else None
    parent_graph = onnx_graph(parent.network)
    int8_graph: bytes | None = None
    if mode is not None:
        int8_graph, record = checked_int8_graph(outcome.network, mode, parent_graph, test.x, split=split_name)
        outcome.compression["onnx"] = record
    child_graph = int8_graph if mode is not None else onnx_graph(outcome.network)
    parent_row, child_row = measure_pair(
        parent,
        outcome.network,
        outcome.spec,
        outcome.state,
        test=test,
        parent_accuracy=before.get("accuracy"),
        child_accuracy=after.get("accuracy"),
        child_label=operation,
        parent_graph=parent_graph,
        child_graph=child_graph,
        child_check=(outcome.compression.get("onnx") or {}).get("check"),
        rounds=rounds,
    )
    rows = [parent_row, child_row]
    if outcome.baseline is not None:
        alone = ops.test_metrics(outcome.baseline["network"], outcome.spec, test, num_classes)
        rows.append(
            Measured(
                "student without teacher",
                None,
                None,
                None,
                child_row.parameters,
                child_row.nonzero,
                accuracy=alone.get("accuracy"),
            )
        )
        outcome.options["baseline_accuracy"] = alone.get("accuracy")
    lineage = {
        "parent": parent.ref,
        "operation": operation,
        "options": outcome.options,
        "metrics_before": _summary(parent_row, before),
        "metrics_after": _summary(child_row, after),
    }
    extra = {
        COMPRESSION_FILE: json.dumps(
            {
                "format": FORMAT,
                "parent": parent.ref,
                "operation": operation,
                "options": outcome.options,
                **outcome.compression,
            },
            indent=1,
        ).encode()
    }
    if int8_graph is not None:
        extra[INT8_ONNX_FILE] = int8_graph  # what the onnx serving backend and `modelyard export` use
    version = ModelStore(home).register(
        name or parent.version.name,
        state_dict=outcome.state,
        spec=outcome.spec.to_dict(),
        preprocess=parent.meta,
        metrics={
            "test": {"split": split_name, **after},
            "compression": [r.to_dict() for r in rows],
            "history": outcome.history,
        },
        lineage=lineage,
        task=parent.task,
        description=f"{operation} of {parent.ref}"
        + (f": {outcome.spec.description}" if outcome.spec.description else ""),
        extra_files=extra,
        summary=summarize(outcome.network, outcome.spec, parent.meta, parent.input_shape),
    )
    child_row.ref = version.ref
    child_row.weights_bytes = (version.path / WEIGHTS_FILE).stat().st_size
    _check_round_trip(version.ref, outcome.network, test.x[:256], home)
    return CompressResult(
        version.ref, parent.ref, operation, outcome.options, rows, speedups(parent_row, child_row), lineage
    )


def _summary(row: Measured, metrics: dict[str, Any]) -> dict[str, Any]:
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**scalars, **{k: v for k, v in row.to_dict().items() if k not in ("label", "ref")}}


def _check_round_trip(ref: str, network: Any, x: torch.Tensor, home: str | Path | None) -> None:
    """The stored version must predict exactly what the network in memory does; else it is removed."""
    loaded = Predictor.load(ref, home=home)
    with torch.inference_mode():
        same = torch.equal(loaded.network(x), network(x))
    if not same:
        ModelStore(home).delete(ref)
        raise StoreError(f"Model {ref} did not load back to the same predictions; the version was removed")
