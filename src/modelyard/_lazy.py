"""Package attributes loaded on first use, written once for every package that has them.

A package says where each of its public names lives; the module is imported when the name
is first looked up (then cached in the package), so ``import modelyard`` and the packages
under it stay cheap: no torch, no FastAPI, no store until they are used.

    __getattr__, __dir__ = lazy_attributes(globals(), {"train": "modelyard.workflow", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the package whose ``globals()`` is ``namespace``.

    ``where`` maps a name to the module holding it, or to ``"module:attr"`` when it is called
    differently there. ``__dir__`` lists the package's ``__all__``.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        target = where.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        namespace[name] = value  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted(namespace["__all__"])

    return __getattr__, __dir__
