"""One fence around modelyard's fast paths: a switch that turns them all off, and version gates.

A fast path does what a plain library call does, faster, by leaning on details of torch or
onnxruntime that their public API does not promise (private attributes, in-place updates that
autograd does not see, a native session method). Each one lives in its own module under
``training/fast/`` or ``serving/fast/``, declares the objects it needs as a typed protocol and
a ``Gate``: the package versions it was tested with. Outside that range, or with the switch
off, the plain path runs (autograd + ``optimizer.step``; ``InferenceSession.run``) and
``report()`` says why.

The switch: ``MODELYARD_FAST_PATHS=0`` in the environment, or ``set_enabled(False)`` /
``with disabled():`` in Python (the Python setting wins over the environment). Turn it off to
debug a numerical difference, or for a feature that must see every step through autograd
(differential privacy reads per-sample gradients from hooks the tape-free step bypasses, so a
run with ``train.privacy`` never builds them, whatever this switch says: ``training/setup.py``).
The answers are the same either way (tests/unit/test_fast_paths.py trains both ways,
tests/unit/serving/fast/test_onnx_bound.py serves both ways).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata

__all__ = ["ENV", "Gate", "enabled", "set_enabled", "disabled", "report"]

ENV = "MODELYARD_FAST_PATHS"
_OFF = {"0", "false", "no", "off"}

_setting: bool | None = None  # None: follow the environment
_gates: dict[str, Gate] = {}


def enabled() -> bool:
    """Whether fast paths may run: the Python setting if made, else ``MODELYARD_FAST_PATHS`` (default on)."""
    if _setting is not None:
        return _setting
    return os.environ.get(ENV, "1").strip().lower() not in _OFF


def set_enabled(value: bool | None) -> None:
    """Turn every fast path on (True) or off (False); None goes back to the environment variable."""
    global _setting
    _setting = value


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run a block with every fast path off (the previous setting is restored after it)."""
    global _setting
    before = _setting
    _setting = False
    try:
        yield
    finally:
        _setting = before


def _version_tuple(text: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` → (2, 13, 0); a pre-release counts as its release (``"1.20.0rc1"`` → (1, 20, 0))."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    return tuple(int(g) for g in match.groups() if g is not None) if match else ()


@lru_cache(maxsize=None)
def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Gate:
    """A fast path's name and the package versions it was tested with: ``minimum <= version < below``."""

    name: str
    package: str
    minimum: str
    below: str

    def __post_init__(self) -> None:
        _gates[self.name] = self

    def blocked(self) -> str | None:
        """None when the fast path may run now, else why the plain path runs instead."""
        if not enabled():
            return f"off ({ENV}=0 or fast_paths.set_enabled(False))"
        version = _installed(self.package)
        if version is None:
            return f"off ({self.package} is not installed)"
        if not _version_tuple(self.minimum) <= _version_tuple(version) < _version_tuple(self.below):
            return f"off ({self.package} {version} is outside the tested range >={self.minimum},<{self.below})"
        return None

    def open(self) -> bool:
        return self.blocked() is None


def report(names: list[str] | None = None, *, off: str | None = None) -> dict[str, str]:
    """Each declared fast path (or those named) → ``"on"`` or ``"off (why)"``, for the runtime report.

    ``off`` is a reason the caller turned them all off for one run (``train.privacy``), whatever
    the switch says."""
    gates = [_gates[n] for n in names] if names is not None else list(_gates.values())
    return {g.name: f"off ({off})" if off else g.blocked() or "on" for g in gates}
