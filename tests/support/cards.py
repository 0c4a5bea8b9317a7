"""Shared pieces of the model-card tests: a small trained family of versions and a card reader.

``family`` trains the console's tiny digits model (3 epochs, about a second) and derives an
int8 and a distilled version from it, as a user would with ``modelyard compress``. The
reader splits a card into its YAML front matter and its sections, and a Markdown table into
cells, so tests can compare the card's numbers with the store's records.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import modelyard
from tests.support.console import train_digits

STUDENT = {
    "model": {"input": [64], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 10, "activation": "softmax"}]}
}


def family(home: Path) -> dict[str, str]:
    """``{"trained": ref, "int8": ref, "distilled": ref}`` in the store at ``home``."""
    trained = train_digits(home)
    int8 = modelyard.compress(trained, quantize="int8", home=home, rounds=1).model_ref
    distilled = modelyard.compress(trained, distill=STUDENT, baseline=False, home=home, rounds=1).model_ref
    return {"trained": trained, "int8": int8, "distilled": distilled}


def front_matter(card: str) -> dict[str, Any]:
    """The card's YAML block (between the first two ``---`` lines), parsed."""
    lines = card.splitlines()
    assert lines[0] == "---", lines[:2]
    end = lines.index("---", 1)
    return dict(yaml.safe_load("\n".join(lines[1:end])))


def section(card: str, title: str) -> list[str]:
    """The lines of ``## title`` up to the next section."""
    lines = card.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def tables(lines: list[str]) -> list[list[list[str]]]:
    """Every Markdown table in ``lines``: rows of cells, the header row first, the ``|---|`` row left out."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])])
        elif current:
            found.append(current)
            current = []
    return found


def pairs(lines: list[str]) -> dict[str, str]:
    """The first two-column table of ``lines`` as ``{name: value}``."""
    return {row[0]: row[1] for row in tables(lines)[0][1:]}
