"""Errors only the server raises, each carrying the HTTP status it answers with.

They extend the project's hierarchy (``modelyard.errors``) so one exception handler maps
every error to a status and a JSON body ``{"error", "message", "field"?}``.
"""

from __future__ import annotations

from modelyard.errors import InputError, ModelyardError

__all__ = [
    "MalformedRequestError",
    "InvalidInstancesError",
    "BodyTooLargeError",
    "UnsupportedMediaTypeError",
    "UnauthorizedError",
    "QueueFullError",
    "ShuttingDownError",
    "RequestTimeoutError",
]


class MalformedRequestError(InputError):
    """The body cannot be read at all: empty, not UTF-8, not JSON, too deeply nested."""

    http_status = 400


class InvalidInstancesError(InputError):
    """The body is readable but does not fit the model (shape, dtype, non-finite values)."""

    http_status = 422


class BodyTooLargeError(InputError):
    """The body is over the size limit; it is refused before (or while) being read."""

    http_status = 413


class UnsupportedMediaTypeError(InputError):
    """A content type the server has no decoder for (only JSON, PNG, JPEG and multipart)."""

    http_status = 415


class UnauthorizedError(ModelyardError):
    """Missing or wrong bearer token."""

    http_status = 401


class QueueFullError(ModelyardError):
    """The model's request queue is full; the client should retry after ``retry_after`` s."""

    http_status = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class ShuttingDownError(QueueFullError):
    """The server is draining after SIGTERM and takes no new work."""


class RequestTimeoutError(ModelyardError):
    """The request waited (queue + forward pass) longer than the configured timeout."""

    http_status = 504
