"""What a model version is: trained, or derived from another version (int8, pruned, distilled, exported).

Derived from the version's lineage (``lineage.json``, copied into its row at registration):
compression and export record ``{"parent": REF, "operation": ...}``; a trained version has
no operation. The bare name of a model never resolves to a derived version when a trained
one exists, so a distilled or exported copy cannot silently replace its parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TRAINED", "KINDS", "kind_of", "parent_of"]

TRAINED = "trained"
# lineage "operation" → kind; an operation a later release adds shows under its own name.
_BY_OPERATION = {"prune": "pruned", "distill": "distilled", "export": "exported"}
KINDS = (TRAINED, "int8", "pruned", "distilled", "exported")


def kind_of(lineage: Mapping[str, Any] | None) -> str:
    """``trained`` unless the lineage names an operation; ``quantize`` → its dtype (``int8``)."""
    operation = lineage.get("operation") if isinstance(lineage, Mapping) else None
    if not operation:
        return TRAINED
    if operation == "quantize":
        options = lineage.get("options") if isinstance(lineage.get("options"), Mapping) else {}
        return str(options.get("dtype") or "int8")
    return _BY_OPERATION.get(str(operation), str(operation))


def parent_of(lineage: Mapping[str, Any] | None) -> str | None:
    """The ref this version was derived from, if any."""
    parent = lineage.get("parent") if isinstance(lineage, Mapping) else None
    return parent if isinstance(parent, str) else None
