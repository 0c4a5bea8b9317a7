"""Explanations: which input features drove a registered model's output.

``modelyard.explain(ref, inputs, method=...)`` → ``Explanation``. Methods (``METHODS``):
integrated gradients and saliency (Captum, any float model, heatmaps for images), SHAP
and LIME (tabular models, top features with their contributions); for text models,
integrated gradients over the token embedding layer (text.py: one attribution per token,
with its character offsets into the input). The CLI command
``modelyard explain`` and the server route ``POST /v1/models/{name}/explain`` use it.

The package is ``explaining`` (like ``training`` and ``serving``) so that importing it
never shadows the top-level function ``modelyard.explain``.
"""

from __future__ import annotations

from modelyard.explaining.api import Explainer, ExplainOptions, explain
from modelyard.explaining.methods import METHODS, get_method
from modelyard.explaining.result import Explanation

__all__ = ["explain", "Explainer", "ExplainOptions", "Explanation", "METHODS", "get_method"]
