"""Evaluate a registered model version on its own test split or on other data.

The model's stored preprocessing is applied as it is (never refitted on evaluation
data), so `modelyard eval` measures exactly what `predict` and the server will do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.data import Split, load_source, prepare, transformed_split
from modelyard.errors import DataError
from modelyard.predict import Predictor
from modelyard.spec import DataSpec
from modelyard.training import evaluate
from modelyard.workflow import eval_split

__all__ = ["evaluate_model", "own_split"]

_SUFFIX_SOURCES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
# Options that describe a file's layout and carry over when another file of the same format is given.
_LAYOUT_OPTIONS = ("target", "features", "x", "y", "size", "mode", "resize", "kind")


def evaluate_model(ref: str, *, data: str | None = None, home: str | Path | None = None) -> dict[str, Any]:
    """Loss and the spec's metrics for model ``ref``; ``data`` is a file, folder or built-in source name."""
    model = Predictor.load(ref, home=home)
    split_name, split = own_split(model) if data is None else _other_split(model, data)
    metrics = evaluate(
        model.network,
        split,
        metrics=list(model.spec.train.metrics),
        loss=model.spec.train.loss,
        task=model.task,
        num_classes=model.meta.get("num_classes"),
    )
    return {"model": model.ref, "split": split_name, **metrics}


def own_split(model: Predictor) -> tuple[str, Split]:
    """The model's own evaluation split, re-derived from its spec and seed; DataError if its data changed."""
    spec = model.spec
    # The same seed gives the same split; the stored preprocessing transforms it (a re-trained
    # tokenizer would give other ids). If a fresh fit differs from the stored one, the data on
    # disk changed since training and the numbers would mislead.
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed, stored=model.pipeline)
    if prepared.data_changed:
        raise DataError(
            f"The data of model {model.ref} changed since it was trained (its preprocessing no longer "
            f"matches); evaluate on explicit data with --data"
        )
    return eval_split(prepared)


def _other_split(model: Predictor, data: str) -> tuple[str, Split]:
    stored = model.spec.data.source
    path = Path(data)
    if path.exists():
        kind = "images" if path.is_dir() else _SUFFIX_SOURCES.get(path.suffix.lower())
        if kind is None:
            raise DataError(
                f"Invalid value for `--data`: expected a .csv, .parquet or .npz file, an image folder or "
                f"a built-in source name, received {data!r}",
                field="--data",
            )
        options: dict[str, Any] = {"path": str(path.resolve())}
        if kind == stored.type:
            options.update({k: v for k, v in stored.options.items() if k in _LAYOUT_OPTIONS and v is not None})
        source: Any = {"type": kind, **options}
    else:
        source = data
    spec = DataSpec.model_validate({"source": source})
    raw = load_source(spec.source, seed=model.spec.seed)
    # Built-in sets with an official test split are evaluated on it; files on every row.
    x, y, name = (raw.x_test, raw.y_test, "test") if raw.has_test else (raw.x_train, raw.y_train, "all")
    return f"{name} of {data}", transformed_split(model.pipeline, x, y, where=f"--data {data}")
