"""One exception hierarchy for everything modelyard reports to a person.

Each class carries the HTTP status a server answers with and the exit code the CLI
uses, so the CLI and the servers never map exceptions by hand. Messages are one line
and say what was wrong, what was expected, what was received and, where it helps,
what to do next.
"""

from __future__ import annotations

__all__ = [
    "ModelyardError",
    "SpecError",
    "ShapeError",
    "DataError",
    "InputError",
    "NotFoundError",
    "StoreError",
    "TrainingError",
]


class ModelyardError(Exception):
    """Base of every error modelyard raises on purpose."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, *, field: str | None = None) -> None:
        # One line: newlines in a user-facing message only hide the important part.
        message = " ".join(str(message).split())
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        out = {"error": type(self).__name__, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


class SpecError(ModelyardError):
    """The spec (file, dict, REST body or --set override) is invalid."""

    http_status = 422
    exit_code = 2


class ShapeError(SpecError):
    """Layers whose shapes do not fit together, found while building the network."""


class DataError(ModelyardError):
    """Training or evaluation data is missing, unreadable or not what the spec says."""

    http_status = 422
    exit_code = 3


class InputError(ModelyardError):
    """Input given to a model for prediction does not match what the model expects."""

    http_status = 400
    exit_code = 3


class NotFoundError(ModelyardError):
    """A named thing (model, version, run) does not exist."""

    http_status = 404
    exit_code = 4


class StoreError(ModelyardError):
    """The store (database or artifact folder) cannot do what was asked."""

    http_status = 409
    exit_code = 5


class TrainingError(ModelyardError):
    """Training cannot go on (loss became NaN, a checkpoint is unusable, ...)."""

    http_status = 500
    exit_code = 6
