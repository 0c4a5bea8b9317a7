"""Model names and references: ``NAME``, ``NAME:VERSION``, ``NAME:latest`` and ``NAME@ALIAS``.

A name becomes a folder name, so it is checked against one strict pattern (the same
one ``spec.name`` uses) before anything touches the disk. ``NAME@ALIAS`` is how MLflow
addresses an alias (``models:/name@champion``), so the same spelling is used here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelyard.errors import InputError, SpecError
from modelyard.registry import closest

__all__ = [
    "NAME_PATTERN",
    "ALIAS_PATTERN",
    "Ref",
    "check_name",
    "check_alias",
    "parse_ref",
    "parse_explicit",
    "unknown_name_message",
]

# Must equal modelyard.spec._NAME_PATTERN (a test guards it): a spec name is a model name.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
# Starts with a letter, so an alias is never mistaken for a version number; "latest" is taken.
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class Ref:
    """A parsed reference: at most one of ``version``, ``alias`` and ``latest`` is set; none is the bare name."""

    name: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False

    @property
    def bare(self) -> bool:
        return self.version is None and self.alias is None and not self.latest


def check_name(name: Any, field: str = "name") -> str:
    """``name`` if it is a valid model name, else a SpecError naming ``field``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"Invalid value for `{field}`: expected a string matching {NAME_PATTERN} "
            f"(lowercase letters, digits, '_', '.', '-'), received {name!r}",
            field=field,
        )
    return name


def check_alias(alias: Any, field: str = "alias") -> str:
    """``alias`` if it is a valid alias name (such as production), else an InputError naming ``field``."""
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        raise InputError(
            f"Invalid value for `{field}`: expected an alias such as production or staging matching "
            f"{ALIAS_PATTERN} (not 'latest', which always means the newest version), received {alias!r}",
            field=field,
        )
    return alias


def parse_ref(ref: Any) -> Ref:
    """``"name"`` → bare; ``"name:latest"`` → latest; ``"name:3"`` → version 3; ``"name@production"`` → alias."""
    text = ref.strip() if isinstance(ref, str) else ""
    name, sep, tail = text.partition("@") if "@" in text else text.partition(":")
    parsed: Ref | None = None
    if _NAME.match(name):
        if not sep:
            parsed = Ref(name)
        elif sep == "@" and _ALIAS.match(tail) and tail != "latest":
            parsed = Ref(name, alias=tail)
        elif sep == ":" and tail == "latest":
            parsed = Ref(name, latest=True)
        elif sep == ":" and _VERSION.match(tail):
            parsed = Ref(name, version=int(tail))
    if parsed is None:
        hint = f"; an alias is written {name}@{tail}" if sep == ":" and _ALIAS.match(tail) else ""
        raise InputError(
            f"Invalid model reference {ref!r}: expected NAME, NAME:VERSION or NAME@ALIAS such as fashion-mlp:3 "
            f"or fashion-mlp@production (NAME matching {NAME_PATTERN}, VERSION an integer >= 1 or 'latest'){hint}",
            field="ref",
        )
    return parsed


def parse_explicit(ref: Any, action: str, *, alias: bool = False) -> Ref:
    """``ref`` parsed for a write (delete, alias set): the bare ``NAME`` is refused, and ``NAME@ALIAS`` unless ``alias``.

    A write must name its version, never leave it to the bare-name rule, so that it never
    hits another version than the one meant.
    """
    parsed = parse_ref(ref)
    if parsed.bare or (parsed.alias is not None and not alias):
        others = f"or {parsed.name}:latest" + (f", or {parsed.name}@ALIAS" if alias else "")
        raise InputError(
            f"Invalid model reference {ref!r} for {action}: expected an explicit NAME:VERSION ({others}) "
            f"such as {parsed.name}:3, so the version is never picked by a rule by accident",
            field="ref",
        )
    return parsed


def unknown_name_message(name: str, known: list[str]) -> str:
    """'Unknown model ...' with the closest registered name and what exists."""
    if not known:
        return f"Unknown model {name!r}: no models are registered yet"
    hint = closest(name, known)
    shown = ", ".join(known[:10]) + (f", ... ({len(known)} in all)" if len(known) > 10 else "")
    extra = f"; did you mean {hint!r}?" if hint else ""
    return f"Unknown model {name!r}{extra} (registered: {shown})"
