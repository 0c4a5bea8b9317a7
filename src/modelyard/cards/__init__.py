"""Model cards: a registered version described in Markdown from the store's own records.

``model_card(home, ref)`` is what ``modelyard models card`` prints and what the control plane's
``GET /v1/models/{name}/versions/{version}/card`` answers. It reads metadata only (JSON files,
database rows, the safetensors header), never the weights' values, so it imports no torch.
"""

from __future__ import annotations

from pathlib import Path

from modelyard.cards.facts import CardFacts, gather
from modelyard.cards.render import front_matter, render

__all__ = ["model_card", "CardFacts", "gather", "render", "front_matter"]


def model_card(home: str | Path | None, ref: str) -> str:
    """The Markdown card of the version ``ref`` names (``NAME:N``, ``NAME@ALIAS`` or ``NAME``)."""
    return render(gather(home, ref))
