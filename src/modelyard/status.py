"""The states of a training run and of a control-plane job: one vocabulary everywhere.

The store, the REST API, the CLI and the web console (which gets it served as
``/console/js/status.js``) all take their words from here:

    queued → running → succeeded | failed | cancelled | interrupted | pruned

``interrupted`` is a run stopped by SIGTERM or Ctrl-C (``train --resume`` continues it,
as it does a failed one); jobs never take it. ``pruned`` is a tuning trial's run that its
pruner stopped early (``modelyard tune``); jobs never take it either. A job and the run it trains use the same words, so "finished well" reads ``succeeded`` in
both. Before store schema 2 a run that finished well was stored as ``completed``; the
schema migration rewrites those rows and ``Status.stored`` still reads the old word.
"""

from __future__ import annotations

from enum import Enum

from modelyard.errors import InputError
from modelyard.registry import closest

__all__ = ["Status", "FINAL", "LEGACY", "parse_status"]


class Status(str, Enum):
    """A run's or a job's state; compares equal to (and serializes as) its word."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    PRUNED = "pruned"

    # The word itself in f-strings, str() and logs on every Python version (3.10 formats mixins differently).
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def final(self) -> bool:
        """Succeeded, failed or cancelled: nothing changes it any more."""
        return self in FINAL

    @classmethod
    def stored(cls, word: str) -> Status:
        """The state a database row holds, old words included."""
        return cls(LEGACY.get(word, word))


FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED, Status.PRUNED})
# Words earlier releases stored → today's state (store schema 2 migrates them).
LEGACY = {"completed": Status.SUCCEEDED}


def parse_status(value: object, field: str = "status") -> Status:
    """A user's ``status`` filter; a one-line InputError naming the field and the words otherwise."""
    words = [s.value for s in Status]
    if isinstance(value, str) and value in words:
        return Status(value)
    if isinstance(value, str) and value in LEGACY:
        hint = f"; {value!r} is now called {LEGACY[value].value!r}"
    else:
        near = closest(str(value), words)
        hint = f"; did you mean {near!r}?" if near else ""
    raise InputError(
        f"Invalid value for `{field}`: expected one of {', '.join(words)}, received {value!r}{hint}", field=field
    )
