"""Gradient attributions with Captum: integrated gradients and saliency, for any float model.

Integrated gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks")
integrates the gradient along the straight path from a baseline to the input:
``attr_i = (x_i - b_i) * ∫₀¹ ∂f(b + α(x - b))/∂x_i dα``. Its completeness axiom says the
attributions sum to ``f(x) - f(b)``; Captum's convergence delta is how far the numerical
integral (Gauss-Legendre, ``steps`` points) is from that, so it is reported with every
answer. Saliency (Simonyan et al. 2013) is ``|∂f(x)/∂x_i|``: cheap, unsigned, and local.

Both run in model-input space (after the stored preprocessing). For the elementwise
affine steps modelyard has (scale, standardize, normalize) and reshapes, integrated
gradients are the same in raw space: the chain rule's factor cancels against the
rescaled ``x - b``.
"""

from __future__ import annotations

import numpy as np
import torch

from modelyard.errors import SpecError
from modelyard.explaining.methods import Attribution, Method, Settings, register
from modelyard.explaining.problem import Problem

__all__ = ["integrated_gradients", "saliency"]

# Captum evaluates N * steps interpolated inputs in chunks of this many rows; each chunk is one
# forward pass, where a request's deadline is checked (Problem.forward).
_ROWS_PER_PASS = 1024


def _baseline(problem: Problem, settings: Settings) -> torch.Tensor:
    """The baseline in model-input form: the preprocessed all-zero raw input unless given."""
    raw_shape = tuple(problem.predictor.input_shape)
    raw = np.zeros(raw_shape, dtype=np.float32) if settings.baseline is None else settings.baseline
    if np.ndim(raw) == 0:  # one number for every raw feature, e.g. 0 or 255 for images
        raw = np.full(raw_shape, float(raw), dtype=np.float32)
    baseline = problem.model_inputs(raw, "baseline")
    if len(baseline) != 1:
        raise SpecError(
            f"Invalid value for `baseline`: expected one raw sample of shape {list(raw_shape)} "
            f"or one number, received {len(baseline)} samples",
            field="baseline",
        )
    return baseline.float()


def integrated_gradients(problem: Problem, settings: Settings) -> Attribution:
    from captum.attr import IntegratedGradients

    baseline = _baseline(problem, settings)
    n = len(problem.features)
    targets = torch.as_tensor(problem.targets)
    method = IntegratedGradients(problem.forward)
    with torch.enable_grad():
        attr, delta = method.attribute(
            problem.features.float(),
            baselines=baseline,
            target=targets,
            n_steps=settings.steps,
            method="gausslegendre",
            internal_batch_size=max(_ROWS_PER_PASS, 2 * n),
            return_convergence_delta=True,
        )
    baseline_rows = baseline.detach().cpu().numpy().reshape(1, -1).astype(np.float64)
    baseline_out = problem.evaluate(baseline_rows)[0][problem.targets]
    return Attribution(
        values=attr.detach().cpu().double().numpy().reshape(n, -1),
        baseline_outputs=baseline_out,
        convergence_delta=delta.detach().cpu().double().numpy().reshape(n),
        details={
            "steps": settings.steps,
            "integration": "gausslegendre",
            "baseline": "zeros" if settings.baseline is None else "given",
        },
    )


def saliency(problem: Problem, settings: Settings) -> Attribution:
    from captum.attr import Saliency

    x = problem.features.float().detach().clone().requires_grad_(True)
    with torch.enable_grad():
        grads = Saliency(problem.forward).attribute(x, target=torch.as_tensor(problem.targets), abs=True)
    return Attribution(values=grads.detach().cpu().double().numpy().reshape(len(x), -1), details={"absolute": True})


register(
    Method(
        "integrated_gradients",
        integrated_gradients,
        gradients=True,
        summary="Captum integrated gradients from a baseline; attributions sum to f(x) - f(baseline)",
    ),
    "ig",
    "integrated_gradient",
    "integratedgradients",
)
register(
    Method("saliency", saliency, gradients=True, summary="Captum saliency: |d output / d input| at the input"),
    "gradient",
    "gradients",
    "vanilla_gradient",
)
