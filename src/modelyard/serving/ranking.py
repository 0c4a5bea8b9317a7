"""Predict options in the query string: top-k labels, a rejection threshold, heatmaps.

``?top_k=3&min_confidence=0.7`` for classifiers, ``?heatmap=saliency`` for image models.

The predict routes take both as query parameters, whatever the body's content type (a PNG
upload has no JSON body to carry them), like the explain routes do. ``top_k`` adds
``top: [{label, probability}, ...]`` (most probable first) to each prediction;
``min_confidence`` marks a prediction whose most probable class is below it as
``rejected: true`` with ``label: null`` (the model is "not sure"), and every other one
``rejected: false``. Probabilities are always returned in full. Without a query string
nothing here runs: the hot path only checks that the string is empty.

``heatmap=METHOD`` (integrated_gradients, its alias ig, or saliency; ``true`` means
integrated_gradients) adds ``heatmap_png`` (base64 PNG of the attributions over the image) to
each prediction, for the class it predicts, as the explain route would draw it
(explain_slots.py runs it, so the explain route's queue, deadline and cost cap apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from modelyard.errors import InvalidInstancesError

__all__ = ["Ranking", "parse_ranking", "apply_ranking"]

_KEYS = ("top_k", "min_confidence", "heatmap")
_CLASSIFIER_KEYS = ("top_k", "min_confidence")
_HEATMAP_METHODS = {
    "integrated_gradients": "integrated_gradients",
    "ig": "integrated_gradients",
    "saliency": "saliency",
}
_HEATMAP_TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class Ranking:
    top_k: int | None = None
    min_confidence: float | None = None
    heatmap: str | None = None  # the attribution method drawn per prediction


def parse_ranking(query: bytes, task: str, classes: int, *, image: bool = False) -> Ranking | None:
    """The options in a predict request's query string; None when it has none."""
    if not query:
        return None
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidInstancesError(
            "Invalid query string: expected key=value pairs such as top_k=3&min_confidence=0.7&heatmap=saliency, "
            f"received {query!r}"
        ) from None
    found: dict[str, str] = {}
    for key, value in pairs:
        if key not in _KEYS:
            raise InvalidInstancesError(
                f"Unknown query parameter `{key}` on the predict route: expected one of {', '.join(_KEYS)}", field=key
            )
        if key in found:
            raise InvalidInstancesError(f"Query parameter `{key}` given twice: expected it once", field=key)
        found[key] = value
    ranked = [key for key in _CLASSIFIER_KEYS if key in found]
    if ranked and task != "classification":
        raise InvalidInstancesError(
            f"Query parameter `{ranked[0]}` needs a classifier: this model's task is {task}", field=ranked[0]
        )
    top_k = _top_k(found["top_k"], max(classes, 2)) if "top_k" in found else None
    floor = _confidence(found["min_confidence"]) if "min_confidence" in found else None
    heatmap = _heatmap(found["heatmap"], image) if "heatmap" in found else None
    return Ranking(top_k=top_k, min_confidence=floor, heatmap=heatmap)


def apply_ranking(records: list[dict[str, Any]], ranking: Ranking, class_names: list[str] | None) -> None:
    """Add ``top`` and ``rejected`` to classifier ``records`` in place (rows with null probabilities: no class)."""
    for record in records:
        probs = record["probabilities"]
        if len(probs) == 1 and probs[0] is not None:  # one sigmoid output: classes 0 and 1
            probs = [1.0 - probs[0], probs[0]]
        ranked = sorted(((p, i) for i, p in enumerate(probs) if p is not None), key=lambda item: (-item[0], item[1]))
        if ranking.top_k is not None:
            record["top"] = [{"label": _name(i, class_names), "probability": p} for p, i in ranked[: ranking.top_k]]
        if ranking.min_confidence is not None:
            valid = record["label"] is not None and len(ranked) == len(probs)
            rejected = not valid or ranked[0][0] < ranking.min_confidence
            record["rejected"] = rejected
            if rejected:
                record["label"] = None


def _name(index: int, class_names: list[str] | None) -> Any:
    return class_names[index] if class_names and index < len(class_names) else index


def _top_k(text: str, classes: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= classes:
        raise InvalidInstancesError(
            f"Invalid value for `top_k`: expected a whole number from 1 to {classes} (the model's classes), "
            f"received {text!r}",
            field="top_k",
        )
    return int(text)


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise InvalidInstancesError(
            f"Invalid value for `min_confidence`: expected a probability from 0 to 1, received {text!r}",
            field="min_confidence",
        )
    return value


def _heatmap(text: str, image: bool) -> str:
    if not image:
        raise InvalidInstancesError(
            "Query parameter `heatmap` needs an image model: heatmaps are drawn over image inputs; "
            "use the explain route for other models",
            field="heatmap",
        )
    method = "integrated_gradients" if text.lower() in _HEATMAP_TRUE else _HEATMAP_METHODS.get(text.lower())
    if method is None:
        raise InvalidInstancesError(
            f"Invalid value for `heatmap`: expected one of {', '.join(_HEATMAP_METHODS)} or true, received {text!r}",
            field="heatmap",
        )
    return method
