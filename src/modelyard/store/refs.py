"""Model names and ``NAME[:VERSION]`` references.

A name becomes a folder name, so it is checked against one strict pattern (the same
one ``spec.name`` uses) before anything touches the disk.
"""

from __future__ import annotations

import re
from typing import Any

from modelyard.errors import InputError, SpecError
from modelyard.registry import closest

__all__ = ["NAME_PATTERN", "check_name", "parse_ref", "unknown_name_message"]

# Must equal modelyard.spec._NAME_PATTERN (a test guards it): a spec name is a model name.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


def check_name(name: Any, field: str = "name") -> str:
    """``name`` if it is a valid model name, else a SpecError naming ``field``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"Invalid value for `{field}`: expected a string matching {NAME_PATTERN} "
            f"(lowercase letters, digits, '_', '.', '-'), received {name!r}",
            field=field,
        )
    return name


def parse_ref(ref: Any) -> tuple[str, int | None]:
    """``"name"`` / ``"name:latest"`` → (name, None); ``"name:3"`` → (name, 3)."""
    text = ref.strip() if isinstance(ref, str) else None
    parts = text.split(":") if text else []
    name = parts[0] if parts else ""
    valid = 1 <= len(parts) <= 2 and bool(_NAME.match(name))
    if valid and len(parts) == 2 and parts[1] != "latest":
        valid = bool(_VERSION.match(parts[1]))
    if not valid:
        raise InputError(
            f"Invalid model reference {ref!r}: expected NAME or NAME:VERSION such as fashion-mlp:3 "
            f"(NAME matching {NAME_PATTERN}, VERSION an integer >= 1 or 'latest')",
            field="ref",
        )
    if len(parts) == 1 or parts[1] == "latest":
        return name, None
    return name, int(parts[1])


def unknown_name_message(name: str, known: list[str]) -> str:
    """'Unknown model ...' with the closest registered name and what exists."""
    if not known:
        return f"Unknown model {name!r}: no models are registered yet"
    hint = closest(name, known)
    shown = ", ".join(known[:10]) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
    extra = f"; did you mean {hint!r}?" if hint else ""
    return f"Unknown model {name!r}{extra} (registered: {shown})"
