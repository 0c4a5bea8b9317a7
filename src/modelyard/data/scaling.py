"""Feature scaling steps: ``scale``, ``standardize`` and ``normalize``.

All statistics come from the training split only and are stored as float lists; the
transform is computed in float32 from the stored values, so a model restored from JSON
transforms inputs bit-for-bit as it did during training.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.data.step import PREPROCESSORS, FitContext, Step
from modelyard.errors import DataError

__all__ = ["Scale", "Standardize", "Normalize", "ScaleOptions", "StatsOptions"]

# sklearn's rule for "zero" spread (preprocessing._data._handle_zeros_in_scale).
_TINY = 10 * np.finfo(np.float64).eps
_CHUNK = 8192  # rows per chunk when summing, to bound float64 temporaries


class ScaleOptions(StrictModel):
    factor: float | None = Field(None, gt=0.0)


@PREPROCESSORS.component("scale", "rescale", options=ScaleOptions, primary="factor")
class Scale(Step):
    """Divide by a factor: `factor`, else 255 for image sources, else the training data's max |x|."""

    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        factor = self.opts.factor
        if factor is None:
            # Images are 8-bit pixels (0..255) whatever the particular training split holds;
            # anything else is scaled so the training data lands in [-1, 1].
            factor = 255.0 if ctx.kind == "image" else float(np.max(np.abs(x))) if x.size else 1.0
            factor = factor if factor > 0 else 1.0
        self.load_state({"factor": float(factor)})

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32, copy=False) / self._factor

    def state_dict(self) -> dict[str, Any]:
        return {"factor": float(self._factor)}

    def load_state(self, state: dict[str, Any]) -> None:
        self._factor = np.float32(state["factor"])


class StatsOptions(StrictModel):
    # feature: one statistic per input value (sklearn's scalers); channel: per channel of
    # [C, H, W] samples (the usual image normalisation); all: one for the whole input.
    per: Literal["feature", "channel", "all"] = "feature"


def _axes(x: np.ndarray, per: str, field: str) -> tuple[int, ...]:
    if per == "feature":
        return (0,)
    if per == "all":
        return tuple(range(x.ndim))
    if x.ndim < 3:
        raise DataError(
            f"Invalid value for `{field}.per`: 'channel' needs samples shaped [C, H, W], received samples of "
            f"shape {list(x.shape[1:])}; add a reshape step before it",
            field=f"{field}.per",
        )
    return (0, *range(2, x.ndim))


def _chunks(x: np.ndarray):
    for start in range(0, len(x), _CHUNK):
        yield x[start : start + _CHUNK].astype(np.float64)


class _Stats(Step):
    """Shared machinery: an (offset, divisor) pair broadcast over the batch axis."""

    def _set(self, offset: np.ndarray, divisor: np.ndarray) -> None:
        self.load_state(
            {"shape": list(offset.shape), "offset": offset.ravel().tolist(), "divisor": divisor.ravel().tolist()}
        )

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32, copy=False) - self._offset) / self._divisor

    def state_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self._offset.shape),
            "offset": self._offset.ravel().tolist(),
            "divisor": self._divisor.ravel().tolist(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        shape = tuple(int(s) for s in state["shape"])
        self._offset = np.asarray(state["offset"], dtype=np.float32).reshape(shape)
        self._divisor = np.asarray(state["divisor"], dtype=np.float32).reshape(shape)


@PREPROCESSORS.component("standardize", "standardise", "zscore", options=StatsOptions)
class Standardize(_Stats):
    """(x - mean) / std with training-split statistics (population std; std 0 → 1)."""

    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        axes = _axes(x, self.opts.per, ctx.field)
        count = x.size // int(np.prod([x.shape[a] for a in range(x.ndim) if a not in axes], dtype=np.int64))
        total = sum(c.sum(axis=axes, keepdims=True) for c in _chunks(x))
        mean = total / count
        squares = sum(((c - mean) ** 2).sum(axis=axes, keepdims=True) for c in _chunks(x))
        std = np.sqrt(squares / count)
        std = np.where(std < _TINY, 1.0, std)
        self._set(mean[0], std[0])


@PREPROCESSORS.component("normalize", "normalise", "minmax", options=StatsOptions)
class Normalize(_Stats):
    """Min-max scaling to [0, 1] with the training split's min and max (range 0 → 1)."""

    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        axes = _axes(x, self.opts.per, ctx.field)
        low = x.min(axis=axes, keepdims=True).astype(np.float64)
        high = x.max(axis=axes, keepdims=True).astype(np.float64)
        span = high - low
        span = np.where(span < _TINY, 1.0, span)
        self._set(low[0], span[0])
