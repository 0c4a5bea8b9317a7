"""``Pipeline``: the fitted preprocessing steps of one model, saved and restored as JSON.

``Pipeline.fit`` runs on the training split only; ``state_dict()`` goes into the model's
``preprocess.json`` and ``Pipeline.from_state`` rebuilds exactly the same transform for
prediction. ``transform_x`` validates raw inputs (shape, finiteness) before any step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.components import ComponentSpec
from modelyard.data.preprocess import PREPROCESSORS, FitContext, Step
from modelyard.data.step import Augment
from modelyard.data.targets import canonical_targets
from modelyard.errors import DataError, InputError, ModelyardError, SpecError

__all__ = ["Pipeline"]

_FORMAT = 1


def _dims(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


class Pipeline:
    """Fitted preprocessing: raw samples of ``raw_input_shape`` → model inputs of ``input_shape``."""

    def __init__(
        self,
        specs: list[ComponentSpec],
        steps: list[Step],
        *,
        task: str,
        kind: str,
        raw_input_shape: tuple[int, ...],
        input_shape: tuple[int, ...],
        integer_ids: bool = False,
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        feature_names: list[str] | None = None,
    ) -> None:
        self.specs = list(specs)
        self.steps = list(steps)
        self.task = task
        self.kind = kind
        self.raw_input_shape = tuple(int(s) for s in raw_input_shape)
        self.input_shape = tuple(int(s) for s in input_shape)
        #: True when x stays integer token ids (sequence data for an embedding layer).
        self.integer_ids = integer_ids
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.feature_names = list(feature_names) if feature_names is not None else None

    # -- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        steps: Sequence[ComponentSpec],
        x: np.ndarray,
        y: np.ndarray | None = None,
        *,
        task: str = "classification",
        kind: str = "tabular",
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        feature_names: list[str] | None = None,
    ) -> Pipeline:
        """Fit ``steps`` in order on the training arrays (raw x, canonical y)."""
        return cls.fit_transform(
            steps,
            x,
            y,
            task=task,
            kind=kind,
            num_classes=num_classes,
            class_names=class_names,
            feature_names=feature_names,
        )[0]

    @classmethod
    def fit_transform(
        cls,
        steps: Sequence[ComponentSpec],
        x: np.ndarray,
        y: np.ndarray | None = None,
        *,
        task: str = "classification",
        kind: str = "tabular",
        num_classes: int | None = None,
        class_names: list[str] | None = None,
        feature_names: list[str] | None = None,
    ) -> tuple[Pipeline, np.ndarray, np.ndarray | None]:
        """``fit`` that also returns the transformed training arrays (no second pass over them)."""
        built: list[Step] = []
        raw_shape = tuple(x.shape[1:])
        shape = raw_shape
        integer_ids = kind == "sequence" and np.asarray(x).dtype.kind in "iu"
        if kind == "text" and not (steps and getattr(PREPROCESSORS.get(steps[0].type).target, "makes_ids", False)):
            raise SpecError(
                "Invalid value for `data.preprocess`: text data needs a tokenize step first "
                "(for example `preprocess: [tokenize]`, or `{tokenize: path/to/tokenizer.json}`), received "
                + (repr(steps[0].type) if steps else "no steps"),
                field="data.preprocess",
            )
        for i, spec in enumerate(steps):
            ctx = FitContext(task=task, kind=kind, num_classes=num_classes, field=f"data.preprocess[{i}]")
            step = PREPROCESSORS.build(spec)
            step.fit(x, y, ctx)
            x = step.transform_x(x)
            if y is not None:
                y = step.transform_y(y)
            shape = step.out_shape(shape)
            integer_ids = step.makes_ids or (integer_ids and step.keeps_ids)
            built.append(step)
        for i, step in enumerate(built):
            step.check_input_shape(
                shape, FitContext(task=task, kind=kind, num_classes=num_classes, field=f"data.preprocess[{i}]")
            )
        pipeline = cls(
            list(steps),
            built,
            task=task,
            kind=kind,
            raw_input_shape=raw_shape,
            input_shape=shape,
            integer_ids=integer_ids,
            num_classes=num_classes,
            class_names=class_names,
            feature_names=feature_names,
        )
        return pipeline, np.ascontiguousarray(x), y

    # -- transforms ------------------------------------------------------------------------
    def transform_x(self, x: Any) -> np.ndarray:
        """Raw samples (one, or a batch [N, *raw_input_shape]) → float32 [N, *input_shape]
        (int64 token ids for text: one string, or a list of them)."""
        if self.kind == "text":
            return self._transform_text(x)
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"Invalid input: expected numbers of shape {list(self.raw_input_shape)}, received {exc}"
            ) from None
        if arr.dtype.kind not in "biuf":
            raise InputError(
                f"Invalid input: expected numbers of shape {list(self.raw_input_shape)}, received values of type {arr.dtype}"
            )
        if arr.shape == self.raw_input_shape:
            arr = arr[None]
        elif arr.ndim == 0 or arr.shape[1:] != self.raw_input_shape:
            raise InputError(
                f"Invalid input: expected input of shape {list(self.raw_input_shape)} (or N×{_dims(self.raw_input_shape)}), "
                f"received {list(arr.shape)}"
            )
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
            if not finite.all():
                raise InputError(
                    f"Invalid input: expected finite numbers, received NaN or infinite values (first in sample {int(np.argmin(finite))})"
                )
        out = arr.astype(np.float32)
        for step in self.steps:
            out = step.transform_x(out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _transform_text(self, x: Any) -> np.ndarray:
        if isinstance(x, str):
            x = [x]
        if isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "OU":
            arr = x.astype(object)
        elif isinstance(x, (list, tuple)) and all(isinstance(v, str) for v in x):
            arr = np.asarray(list(x), dtype=object).reshape(len(x))
        else:
            if isinstance(x, (list, tuple)):
                shown = "a list with items that are not strings"
            elif isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
                shown = "numbers"
            else:
                shown = type(x).__name__
            raise InputError(f"Invalid input: expected a string or a list of strings, received {shown}")
        out = arr
        for step in self.steps:
            out = step.transform_x(out)
        return np.ascontiguousarray(out, dtype=np.int64)

    def transform_y(self, y: Any, *, where: str = "the data") -> np.ndarray:
        """Targets → int64 [N] labels (float32 one-hot rows after one_hot) or float32 [N, outputs]."""
        out = canonical_targets(
            np.asarray(y), self.task, class_names=self.class_names, num_classes=self.num_classes, where=where
        )
        for step in self.steps:
            out = step.transform_y(out)
        return out

    def augmenter(self) -> Augment | None:
        """``augment(batch, generator) -> batch`` for training batches, or None without augment steps."""
        fns = [fn for fn in (step.augmenter() for step in self.steps) if fn is not None]
        if not fns:
            return None
        if len(fns) == 1:
            return fns[0]

        def augment(batch: Any, generator: Any) -> Any:
            for fn in fns:
                batch = fn(batch, generator)
            return batch

        return augment

    # -- saving ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this pipeline, as JSON-able data."""
        return {
            **self._head(),
            "steps": [
                {"type": spec.type, "options": dict(spec.options), "state": step.state_dict()}
                for spec, step in zip(self.specs, self.steps)
            ],
        }

    def _head(self) -> dict[str, Any]:
        """The state without the steps' fitted states."""
        return {
            "format": _FORMAT,
            "task": self.task,
            "kind": self.kind,
            "raw_input_shape": list(self.raw_input_shape),
            "input_shape": list(self.input_shape),
            "integer_ids": self.integer_ids,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "feature_names": self.feature_names,
        }

    def same_fit(self, stored: Pipeline) -> bool:
        """True when this pipeline, fitted now, and ``stored`` (a model version's) were fitted on the
        same training data with the same steps: then ``stored`` is the one to transform with,
        since a step whose fit is not deterministic (a trained tokenizer) gives other ids on a re-fit."""
        if self._head() != stored._head() or len(self.steps) != len(stored.steps):
            return False
        for spec, old_spec in zip(self.specs, stored.specs):
            if (spec.type, dict(spec.options)) != (old_spec.type, dict(old_spec.options)):
                return False
        return all(step.same_fit(old) for step, old in zip(self.steps, stored.steps))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Pipeline:
        """Rebuild a fitted pipeline from ``state_dict()`` output."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise DataError(f"Invalid preprocessing state: expected format {_FORMAT}, received {got!r}")
        try:
            specs, steps = [], []
            for item in state["steps"]:
                spec = ComponentSpec(type=item["type"], options=item.get("options", {}))
                step = PREPROCESSORS.build(spec)
                step.load_state(item.get("state", {}))
                specs.append(spec)
                steps.append(step)
            return cls(
                specs,
                steps,
                task=state["task"],
                kind=state["kind"],
                raw_input_shape=tuple(state["raw_input_shape"]),
                input_shape=tuple(state["input_shape"]),
                integer_ids=bool(state.get("integer_ids", False)),
                num_classes=state.get("num_classes"),
                class_names=state.get("class_names"),
                feature_names=state.get("feature_names"),
            )
        except ModelyardError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Invalid preprocessing state: {type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        names = ", ".join(spec.type for spec in self.specs) or "no steps"
        return f"Pipeline({names}; {list(self.raw_input_shape)} → {list(self.input_shape)})"
