"""``Explanation``: attributions for a batch of inputs, with what is needed to check them.

Every instance carries the output that was explained (``output``), the sum of its
attributions and, where the method defines one, the reference output they are measured
from (``baseline_output``: f(baseline) for integrated gradients, E[f(background)] for
SHAP), so "the attributions add up" can be verified from the answer alone.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import SpecError

__all__ = ["Explanation"]


@dataclass
class Explanation:
    model: str  # "name:N"
    method: str
    task: str
    inputs: np.ndarray  # (N, *raw_input_shape) raw inputs; (N,) strings for a text model
    attributions: np.ndarray  # (N, *raw_input_shape); model-input shape if preprocessing changes the size;
    # (N, T) per token position for a text model (0 at padding)
    targets: np.ndarray  # (N,) explained output index
    labels: list[Any]  # (N,) class name (or index) of each target
    outputs: np.ndarray  # (N,) explained output at the input
    feature_names: list[str]
    baseline_outputs: np.ndarray | None = None
    convergence_delta: np.ndarray | None = None
    image: tuple[int, int, int] | None = None  # (C, H, W) when the inputs are images
    top: int = 10
    per_instance: list[dict[str, Any]] | None = None
    # text models: per instance its tokens in order, {token, id, start, end, special, attribution};
    # start/end are character offsets into the input text (None for special tokens such as [CLS])
    tokens: list[list[dict[str, Any]]] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.attributions)

    @property
    def attribution_sums(self) -> np.ndarray:
        return self.attributions.reshape(len(self), -1).sum(axis=1)

    def _index(self, index: int) -> int:
        if not isinstance(index, int) or isinstance(index, bool) or not -len(self) <= index < len(self):
            raise SpecError(
                f"Invalid value for `index`: expected an instance index 0..{len(self) - 1}, received {index!r}",
                field="index",
            )
        return index % len(self)

    def top_features(self, index: int = 0, k: int | None = None) -> list[dict[str, Any]]:
        """The ``k`` (default ``top``) features with the largest |contribution|, largest first."""
        i = self._index(index)
        if self.tokens is not None:  # text: the tokens with the largest |attribution|
            pieces = self.tokens[i]
            order = np.argsort([-abs(p["attribution"]) for p in pieces], kind="stable")[: k or self.top]
            return [
                {"feature": pieces[j]["token"], "value": None, "contribution": pieces[j]["attribution"]} for j in order
            ]
        contributions = self.attributions[i].reshape(-1)
        values = self.inputs[i].reshape(-1)
        if values.size != contributions.size:  # preprocessing changed the size: show model-input positions
            values = np.full(contributions.size, np.nan)
        order = np.argsort(-np.abs(contributions), kind="stable")[: k or self.top]
        return [
            {
                "feature": self.feature_names[j],
                "value": None if np.isnan(values[j]) else float(values[j]),
                "contribution": float(contributions[j]),
            }
            for j in order
        ]

    def heatmap_png(self, index: int = 0, *, scale: int = 1) -> bytes:
        """The attribution overlay of one image input as PNG bytes (``scale``x enlarged)."""
        from modelyard.explaining.heatmap import overlay_png

        if self.image is None:
            raise SpecError(
                f"Model {self.model} does not take images: heatmaps are drawn for image inputs only; "
                f"use top_features() for tabular inputs",
                field="heatmap",
            )
        i = self._index(index)
        return overlay_png(self.inputs[i], self.attributions[i], self.image, scale=scale)

    def save_heatmap(self, path: str | os.PathLike[str], index: int = 0, *, scale: int = 1) -> Path:
        """Write the heatmap of instance ``index`` to ``path`` (PNG, written atomically)."""
        from modelyard._files import atomic_write_bytes

        return atomic_write_bytes(Path(path), self.heatmap_png(index, scale=scale))

    def instance(self, index: int, *, heatmap: bool = True) -> dict[str, Any]:
        """JSON-ready explanation of one instance."""
        i = self._index(index)
        out: dict[str, Any] = {
            "target": int(self.targets[i]),
            "label": self.labels[i],
            "output": float(self.outputs[i]),
            "attribution_sum": float(self.attribution_sums[i]),
        }
        if self.baseline_outputs is not None:
            out["baseline_output"] = float(self.baseline_outputs[i])
        if self.convergence_delta is not None:
            out["convergence_delta"] = float(self.convergence_delta[i])
        if self.per_instance is not None:
            out.update(self.per_instance[i])
        if self.tokens is not None:  # text: the tokens in order, and the attributions of those tokens
            out["text"] = str(self.inputs[i])
            out["tokens"] = [dict(piece) for piece in self.tokens[i]]
            out["attributions"] = [piece["attribution"] for piece in self.tokens[i]]
            return out
        out["attributions"] = self.attributions[i].tolist()
        if self.image is None:
            out["top_features"] = self.top_features(i)
        elif heatmap:
            out["heatmap_png"] = base64.b64encode(self.heatmap_png(i)).decode("ascii")
        return out

    def to_dict(self, *, heatmaps: bool = True) -> dict[str, Any]:
        """JSON-ready: the settings, then one entry per instance (see ``instance``)."""
        return {
            "model": self.model,
            "method": self.method,
            "task": self.task,
            "explained_output": "probability of the target class" if self.task == "classification" else "target output",
            "details": dict(self.details),
            "explanations": [self.instance(i, heatmap=heatmaps) for i in range(len(self))],
        }
