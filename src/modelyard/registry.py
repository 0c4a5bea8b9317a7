"""A tiny generic name → component registry with aliases and helpful misses.

Layers, losses, optimizers, schedules, metrics, data sources and preprocessing steps
each keep one ``Registry``. A lookup that misses lists what exists and the closest
match, so a typo in a spec teaches rather than puzzles.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from modelyard.errors import SpecError

T = TypeVar("T")

__all__ = ["Registry", "closest", "normalize_name"]


def normalize_name(name: str) -> str:
    """Names are case-insensitive and treat '-', ' ' and '_' alike."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest valid name to ``name`` among ``choices``, or None if nothing is close."""
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


class Registry(Generic[T]):
    """Maps canonical names and aliases to components of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator: ``@LOSSES.register("mse", "mean_squared_error")``."""

        def decorate(obj: T) -> T:
            self.add(name, obj, *aliases)
            return obj

        return decorate

    def add(self, name: str, obj: T, *aliases: str) -> None:
        key = normalize_name(name)
        if key in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[key] = obj
        self._aliases[key] = key
        for alias in aliases:
            a = normalize_name(alias)
            if a in self._aliases and self._aliases[a] != key:
                raise ValueError(f"{self.kind} alias {alias!r} is registered twice")
            self._aliases[a] = key

    def canonical(self, name: str, *, field: str | None = None) -> str:
        """The canonical name for ``name`` (an alias or itself); raises SpecError on a miss."""
        key = normalize_name(name)
        if key in self._aliases:
            return self._aliases[key]
        hint = closest(key, list(self._aliases))
        where = f"`{field}`" if field else f"{self.kind}"
        msg = f"Unknown {self.kind} {name!r} for {where}: expected one of {', '.join(self.names())}"
        if hint:
            msg += f"; did you mean {self._aliases[hint]!r}?"
        raise SpecError(msg, field=field)

    def get(self, name: str, *, field: str | None = None) -> T:
        return self._items[self.canonical(name, field=field)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._aliases

    def names(self) -> list[str]:
        """Canonical names, sorted."""
        return sorted(self._items)

    def all_names(self) -> list[str]:
        """Canonical names and aliases, sorted."""
        return sorted(self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
