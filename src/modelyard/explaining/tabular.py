"""Model-agnostic explanations for tabular models: SHAP (KernelExplainer) and LIME.

Both only call the model, so they work for any network; both perturb features against a
background of real rows (a seeded sample of the model's training split, see
background.py). They run in model-input space: for the per-feature affine steps
modelyard has (scale, standardize, normalize), feature coalitions there are the same as
in raw space, so the Shapley values are those of the raw features.

- SHAP: Kernel SHAP (Lundberg & Lee 2017) solves a weighted linear regression over
  feature coalitions; its values sum exactly to ``f(x) - E[f(background)]``. With up to
  11 features every coalition is enumerated and the values are exact Shapley values
  w.r.t. the background (for a linear model ``w_i (x_i - E[x_i])``).
- LIME (Ribeiro et al. 2016): a local ridge regression on quartile-binned features
  around the instance; the weights say how much being in the instance's bin moves the
  output. They need not sum to anything; the fit's R² is reported as ``score``.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from modelyard.errors import SpecError
from modelyard.explaining.methods import Attribution, Method, Settings, register
from modelyard.explaining.problem import Problem

__all__ = ["kernel_shap", "lime", "MAX_SHAP_FEATURES"]

MAX_SHAP_FEATURES = 256
_SHAP_ROWS = 100  # background rows; shap itself warns above 100 (run time grows linearly)
_SHAP_BUDGET = 20_000_000  # floats in KernelExplainer's synthetic data (coalitions x rows x features)
_LIME_SAMPLES = 5000
_GLOBAL_RNG = threading.Lock()


def _import_shap() -> Any:
    with warnings.catch_warnings():
        # shap 0.51 calls Colormap.set_bad/set_over at import, which matplotlib 3.11 marks
        # pending-deprecated; not ours to fix, and fatal where warnings are errors.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap
    return shap


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """KernelExplainer samples coalitions from numpy's global RNG and takes no seed: seed
    it for reproducible answers, and put the caller's state back afterwards."""
    with _GLOBAL_RNG:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def kernel_shap(problem: Problem, settings: Settings) -> Attribution:
    features = problem.n_features
    if features > MAX_SHAP_FEATURES:
        raise SpecError(
            f"Invalid value for `method`: shap evaluates feature coalitions and explains at most {MAX_SHAP_FEATURES} "
            f"model-input features, model {problem.predictor.ref} has {features}; use integrated_gradients or saliency",
            field="method",
        )
    shap = _import_shap()
    coalitions = 2 * features + 2048  # KernelExplainer's "auto" sample count
    rows = int(np.clip(_SHAP_BUDGET // (coalitions * features), 10, _SHAP_ROWS))
    background = settings.background()[:rows]
    explainer = shap.KernelExplainer(problem.evaluate, background)
    x = problem.flat_features()
    with _seeded_global_rng(settings.seed):
        # l1_reg=False: keep every feature (the default keeps 10 when coalitions are sampled).
        raw_values = explainer.shap_values(x, silent=True, l1_reg=False)
    values = np.asarray(raw_values, dtype=np.float64)
    if values.ndim == 2:  # one model output
        values = values[..., None]
    index = np.arange(len(x))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    return Attribution(
        values=values[index, :, problem.targets],
        baseline_outputs=expected[problem.targets],
        details={
            "explainer": "KernelExplainer",
            "background_rows": len(background),
            "coalitions": min(coalitions, 2**features - 2) if features <= 30 else coalitions,
        },
    )


def lime(problem: Problem, settings: Settings) -> Attribution:
    from lime.lime_tabular import LimeTabularExplainer

    background = settings.background()
    x = problem.flat_features()
    values = np.zeros((len(x), problem.n_features))
    # Features constant in the background (image borders, unused columns) cannot be perturbed:
    # their binned indicator is always 1, collinear with the intercept, and the ridge fit would
    # hand them arbitrary weight. They get 0; LIME sees only the varying ones.
    varying = np.flatnonzero(background.std(axis=0) > 0)
    fits = []
    explainer = (
        LimeTabularExplainer(
            background[:, varying],
            mode="regression",
            feature_names=[str(i) for i in varying],
            discretize_continuous=True,
            random_state=settings.seed,
        )
        if len(varying)
        else None
    )
    for i, (row, target) in enumerate(zip(x, problem.targets)):
        if explainer is None:
            fits.append(
                {
                    "intercept": float(problem.outputs[i, target]),
                    "local_prediction": float(problem.outputs[i, target]),
                    "score": 0.0,
                }
            )
            continue

        def predict(rows: np.ndarray, row: np.ndarray = row, target: int = int(target)) -> np.ndarray:
            full = np.repeat(row[None], len(rows), axis=0)
            full[:, varying] = rows
            return problem.evaluate(full)[:, target]

        found = explainer.explain_instance(row[varying], predict, num_features=len(varying), num_samples=_LIME_SAMPLES)
        for feature, weight in found.local_exp[1]:  # regression mode keeps the weights under label 1
            values[i, varying[int(feature)]] = weight
        fits.append(
            {
                "intercept": float(found.intercept[1]),
                "local_prediction": float(np.ravel(found.local_pred)[0]),
                "score": float(found.score),
            }
        )
    return Attribution(
        values=values,
        per_instance=fits,
        details={
            "background_rows": len(background),
            "samples": _LIME_SAMPLES,
            "discretizer": "quartile",
            "constant_features": int(problem.n_features - len(varying)),
        },
    )


register(
    Method(
        "shap",
        kernel_shap,
        tabular_only=True,
        summary="Kernel SHAP vs a training-split background; values sum to f(x) - E[f(background)]",
    ),
    "kernel_shap",
    "kernelshap",
    "shapley",
)
register(
    Method("lime", lime, tabular_only=True, summary="LIME: a local linear model on binned features"), "lime_tabular"
)
