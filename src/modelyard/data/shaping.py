"""Shape steps: ``reshape`` (per-sample shape of x) and ``one_hot`` (class targets to rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from modelyard._validation import ReshapeOptions, StrictModel
from modelyard.data.step import PREPROCESSORS, FitContext, Step
from modelyard.errors import DataError

__all__ = ["Reshape", "OneHot", "ReshapeOptions", "OneHotOptions"]


@PREPROCESSORS.component("reshape", options=ReshapeOptions, primary="shape")
class Reshape(Step):
    """Give each sample a new shape with the same number of values (e.g. [784] → [1, 28, 28])."""

    keeps_ids = True

    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        self.load_state({"shape": self._resolve(tuple(x.shape[1:]), ctx.field)})

    def _resolve(self, sample: tuple[int, ...], field: str) -> list[int]:
        want = list(self.opts.shape)
        size = int(np.prod(sample, dtype=np.int64))
        known = int(np.prod([v for v in want if v != -1], dtype=np.int64))
        if -1 in want and known and size % known == 0:
            want[want.index(-1)] = size // known
        if -1 in want or int(np.prod(want, dtype=np.int64)) != size:
            raise DataError(
                f"Invalid value for `{field}.shape`: expected a shape with {size} values (the samples have shape "
                f"{list(sample)} at this step), received {list(self.opts.shape)} ({known} values)",
                field=f"{field}.shape",
            )
        return want

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self._shape)

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), *self._shape)

    def state_dict(self) -> dict[str, Any]:
        return {"shape": list(self._shape)}

    def load_state(self, state: dict[str, Any]) -> None:
        self._shape = tuple(int(v) for v in state["shape"])


class OneHotOptions(StrictModel):
    classes: int | None = Field(None, ge=2)


@PREPROCESSORS.component("one_hot", "onehot", "to_categorical", options=OneHotOptions, primary="classes")
class OneHot(Step):
    """Class targets → float32 one-hot rows [N, classes] (classes: option, else from the data)."""

    keeps_ids = True

    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        if ctx.task != "classification":
            raise DataError(
                f"Invalid step `{ctx.field}`: one_hot turns class labels into one-hot rows, but this spec's task is "
                f"{ctx.task} (its loss is not a classification loss); remove the step",
                field=ctx.field,
            )
        classes = self.opts.classes or ctx.num_classes
        if classes is None and y is not None and len(y):
            classes = int(np.max(y)) + 1
        self._field = ctx.field
        self.load_state({"classes": int(classes or 2)})

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        labels = np.asarray(y).reshape(-1).astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self._classes):
            bad = int(labels.max()) if labels.max() >= self._classes else int(labels.min())
            raise DataError(
                f"Invalid value for `{getattr(self, '_field', 'data.preprocess')}.classes`: expected class labels "
                f"0..{self._classes - 1}, received {bad}",
                field=getattr(self, "_field", "data.preprocess"),
            )
        out = np.zeros((len(labels), self._classes), dtype=np.float32)
        out[np.arange(len(labels)), labels] = 1.0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"classes": self._classes}

    def load_state(self, state: dict[str, Any]) -> None:
        self._classes = int(state["classes"])
