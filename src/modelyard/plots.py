"""PNG plots of a run: learning curves and a confusion matrix.

Drawn with matplotlib's object API (``Figure`` + ``FigureCanvasAgg``) rather than pyplot,
so nothing global changes (no backend switch, no figure registry) and plotting works in
servers and threads. matplotlib is imported on first use, keeping ``import modelyard`` fast.
Files are written atomically: a reader never sees half a PNG.
"""

from __future__ import annotations

import io
import math
import numbers
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard._files import atomic_write_bytes
from modelyard.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["learning_curves", "confusion_matrix", "metric_families"]

_SPLIT_PREFIXES = ("train_", "val_", "test_")
_LABEL_CHARS = 18  # longer class names are shortened so the matrix keeps its room
_ANNOTATE_MAX = 30  # beyond this many classes the numbers would be unreadable


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def metric_families(history: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Group metric keys by what they measure: ``loss``/``val_loss`` → ``{"loss": [...]}``.

    Keys keep their first-seen order; ``epoch`` and non-numeric values are left out.
    """
    families: dict[str, list[str]] = {}
    for row in history:
        for key, value in row.items():
            if key == "epoch" or _number(value) is None:
                continue
            family = next((key[len(p) :] for p in _SPLIT_PREFIXES if key.startswith(p)), key) or key
            keys = families.setdefault(family, [])
            if key not in keys:
                keys.append(key)
    return families


def _render(fig: Figure, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches itself to the figure
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Class names in scripts DejaVu Sans lacks draw as boxes; not worth failing over.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())


def learning_curves(history: Sequence[dict[str, Any]], path: str | Path, *, title: str | None = None) -> Path:
    """One subplot per metric family (loss/val_loss, accuracy/val_accuracy, ...) by epoch."""
    from matplotlib.figure import Figure

    families = metric_families(history)
    if not families:
        raise DataError(
            "Cannot plot learning curves: expected a history of per-epoch metric dicts with numbers, "
            f"received {len(history)} epoch(s) without any",
            field="history",
        )
    epochs = [_number(row.get("epoch")) for row in history]
    xs = [e if e is not None else float(i + 1) for i, e in enumerate(epochs)]
    cols = min(3, len(families))
    rows = math.ceil(len(families) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (family, keys) in zip(axes, families.items()):
        for key in keys:
            ys = [_number(row.get(key)) for row in history]
            ax.plot(
                xs,
                [math.nan if y is None else y for y in ys],
                marker="o" if len(xs) <= 30 else None,
                markersize=3,
                label=key,
            )
        ax.set_title(family)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(families) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _render(fig, path)


def _short(name: str) -> str:
    """Shorten in the middle: names often differ at the end ("shirt_v1", "shirt_v2")."""
    if len(name) <= _LABEL_CHARS:
        return name
    tail = _LABEL_CHARS // 3
    return name[: _LABEL_CHARS - tail - 1] + "…" + name[-tail:]


def confusion_matrix(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str] | None,
    path: str | Path,
    *,
    title: str | None = "Confusion matrix",
    normalize: bool = False,
) -> Path:
    """Annotated heatmap; rows are true classes, columns predicted (sklearn's convention).

    ``normalize=True`` shows each row as fractions of that class's samples.
    """
    import numpy as np
    from matplotlib.figure import Figure

    try:
        counts = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "Invalid value for `matrix`: expected a square list of lists of counts", field="matrix"
        ) from None
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise DataError(
            f"Invalid value for `matrix`: expected a square N x N list of counts, received shape {counts.shape}",
            field="matrix",
        )
    n = counts.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise DataError(
            f"Invalid value for `class_names`: expected {n} names (one per matrix row), received {len(names)}",
            field="class_names",
        )
    values = counts
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    side = min(4.0 + 0.45 * n, 24.0)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=max(float(values.max()), 1e-12))
    fig.colorbar(image, ax=ax, shrink=0.8)
    labels = [_short(name) for name in names]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    if n <= _ANNOTATE_MAX:
        threshold = values.max() / 2.0
        fontsize = 10 if n <= 10 else 7
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalize else f"{counts[i, j]:.0f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if values[i, j] > threshold else "black",
                )
    return _render(fig, path)
