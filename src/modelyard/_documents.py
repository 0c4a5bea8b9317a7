"""Strict JSON documents from untrusted text: request bodies, spec files, input files.

Python's ``json.loads`` alone accepts NaN/Infinity, raises a bare ValueError for an integer
of more than 4,300 digits (its int-to-str guard, also hit by ``yaml.safe_load``) and a
RecursionError for deep nesting; each of those became a 500 or an "internal error".
``load_json`` turns every one into the caller's 4xx error class naming ``body``.
"""

from __future__ import annotations

import json
from typing import Any

from modelyard.errors import ModelyardError

__all__ = ["load_json", "TOO_MANY_DIGITS"]

TOO_MANY_DIGITS = "expected integers of at most 4,300 digits"


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(f"expected finite numbers (strict JSON has no NaN or Infinity), received {name}")


def load_json(raw: bytes | str, error: type[ModelyardError], what: str = "JSON body") -> Any:
    """The document in ``raw``, or ``error`` (a 4xx naming ``body``) saying what is wrong with it."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise error(
            f"Invalid {what}: expected UTF-8 text, received byte 0x{raw[exc.start]:02x}", field="body"
        ) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise error(f"Malformed {what} at line {exc.lineno}, column {exc.colno}: {exc.msg}", field="body") from None
    except RecursionError:
        raise error(f"Invalid {what}: nested too deeply", field="body") from None
    except ValueError as exc:  # NaN/Infinity, or Python's guard against integers of more than 4,300 digits
        reason = str(exc) if isinstance(exc, _NonFinite) else TOO_MANY_DIGITS
        raise error(f"Invalid number in the {what}: {reason}", field="body") from None
