"""Small built-in data sets: XOR, synthetic linear regression and scikit-learn's digits.

They need no files, so examples, tests and first steps work on any machine.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.data.raw import SOURCES, RawData

__all__ = ["XorOptions", "LinearOptions", "DigitsOptions"]


class XorOptions(StrictModel):
    repeat: int = Field(1, ge=1, le=100_000)


@SOURCES.component("xor", options=XorOptions, primary="repeat")
def xor(opts: XorOptions, *, seed: int) -> RawData:
    """The four XOR points (y = x1 xor x2); no test split: evaluation uses the training points."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    # With no held-out points, a model of XOR is judged on the four points it learned.
    return RawData(
        x_train=np.tile(x, (opts.repeat, 1)),
        y_train=np.tile(y, (opts.repeat, 1)),
        feature_names=["x1", "x2"],
        kind="tabular",
        holdout=False,
    )


Matrix = list[float] | list[list[float]]


class LinearOptions(StrictModel):
    """y = f(X θ) + bias + noise, with X ~ N(0, 1) unless ``x`` gives the data explicitly."""

    n: int = Field(1000, ge=1, le=10_000_000)
    # None: 10 features and 1 output, or whatever the explicit `x`/`y` data have.
    features: int | None = Field(None, ge=1, le=100_000)
    outputs: int | None = Field(None, ge=1, le=100_000)
    noise: float = Field(0.1, ge=0.0)
    theta: Matrix | None = None
    x: list[list[float]] | None = None
    y: Matrix | None = None
    bias: float = 0.0
    nonlinearity: Literal["none", "tanh", "sin", "relu"] = "none"

    @model_validator(mode="after")
    def _shapes(self) -> LinearOptions:
        features, outputs = self.features or 10, self.outputs or 1
        if self.x is not None:
            widths = {len(row) for row in self.x}
            if not self.x or len(widths) != 1 or 0 in widths:
                raise ValueError(
                    f"`x` must be a non-empty list of equally long rows, received row lengths {sorted(widths)}"
                )
            width = widths.pop()
            if self.features is not None and self.features != width:
                raise ValueError(f"`features` is {features} but the rows of `x` have {width} values")
            features = width
        elif self.y is not None:
            raise ValueError("`y` needs `x`: give the inputs of the explicit data too")
        if self.y is not None and self.x is not None:
            y = _matrix(self.y)
            if y.shape[0] != len(self.x):
                raise ValueError(
                    f"`y` must have one value (or row) per row of `x` ({len(self.x)}), received {len(self.y)}"
                )
            if self.outputs is not None and self.outputs != y.shape[1]:
                raise ValueError(f"`outputs` is {self.outputs} but `y` has {y.shape[1]} value(s) per row")
            outputs = y.shape[1]
        if self.theta is not None:
            theta = _matrix(self.theta)
            if theta.shape != (features, outputs):
                raise ValueError(
                    f"`theta` must be a {features}x{outputs} matrix (features x outputs; a flat list when outputs is 1), received {list(theta.shape)}"
                )
        return self


def _matrix(value: Matrix) -> np.ndarray:
    """A flat list as a column, a list of rows as a matrix; ragged rows raise ValueError."""
    if value and isinstance(value[0], list):
        if len({len(row) for row in value}) != 1:  # type: ignore[arg-type]
            raise ValueError("rows of different lengths")
        return np.asarray(value, dtype=np.float64)
    return np.asarray(value, dtype=np.float64).reshape(-1, 1)


_NONLINEAR = {"none": lambda z: z, "tanh": np.tanh, "sin": np.sin, "relu": lambda z: np.maximum(z, 0.0)}


@SOURCES.component("linear", "linear_regression", options=LinearOptions, primary="n")
def linear(opts: LinearOptions, *, seed: int) -> RawData:
    """Synthetic regression y = f(X θ) + bias + N(0, noise²), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    if opts.x is not None:
        x = np.asarray(opts.x, dtype=np.float64)
    else:
        x = rng.standard_normal((opts.n, opts.features or 10))
    outputs = opts.outputs or 1
    if opts.y is not None:
        y = _matrix(opts.y)  # rectangular: checked by LinearOptions
    else:
        if opts.theta is not None:
            theta = _matrix(opts.theta)
        else:
            theta = rng.standard_normal((x.shape[1], outputs))
        y = _NONLINEAR[opts.nonlinearity](x @ theta) + opts.bias
        if opts.noise > 0:
            y = y + opts.noise * rng.standard_normal(y.shape)
    return RawData(
        x_train=x.astype(np.float32),
        y_train=y.astype(np.float32),
        feature_names=[f"x{i + 1}" for i in range(x.shape[1])],
        kind="tabular",
        # Explicit textbook data is small and given whole: fit and judge on all of it
        # unless the spec asks for a test split.
        holdout=opts.x is None,
    )


class DigitsOptions(StrictModel):
    pass


@SOURCES.component("digits", "sklearn_digits", options=DigitsOptions)
def digits(opts: DigitsOptions, *, seed: int) -> RawData:
    """scikit-learn's bundled 8x8 digits: x [1797, 64] float32 with values 0..16, 10 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Kind "tabular": the values run 0..16, not 0..255, and the rows are flat; add
    # `reshape: [1, 8, 8]` to use them as images.
    return RawData(
        x_train=np.ascontiguousarray(bunch.data, dtype=np.float32),
        y_train=bunch.target.astype(np.int64),
        class_names=[str(i) for i in range(10)],
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        kind="tabular",
    )
