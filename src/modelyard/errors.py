"""One exception hierarchy for everything modelyard reports to a person.

Each class carries the HTTP status a server answers with and the exit code the CLI
uses, so the CLI and the servers never map exceptions by hand. Messages are one line
and say what was wrong, what was expected, what was received and, where it helps,
what to do next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "ModelyardError",
    "UsageError",
    "SpecError",
    "ShapeError",
    "ResourceError",
    "DataError",
    "DataAccessError",
    "InputError",
    "MalformedRequestError",
    "InvalidInstancesError",
    "BodyTooLargeError",
    "UnsupportedMediaTypeError",
    "InvalidRequestError",
    "NotFoundError",
    "StoreError",
    "LeaseLostError",
    "RoundClosedError",
    "TrainingError",
    "RunPruned",
    "ServerUnavailableError",
    "QueueFullError",
    "ShuttingDownError",
    "RequestTimeoutError",
    "DeploymentUnavailableError",
    "AccessDeniedError",
    "UnauthorizedError",
    "ForbiddenError",
    "InvalidHostError",
    "ExportError",
    "MissingDependencyError",
    "EXTRAS",
    "optional_dependency",
]

#: The top-level modules each optional extra of pyproject.toml brings (``pip install 'modelyard[serve]'``).
EXTRAS: dict[str, tuple[str, ...]] = {
    "audio": ("soundfile", "_soundfile", "cffi", "scipy"),
    "voice": ("pocketsphinx", "num2words", "soundfile", "_soundfile", "cffi", "scipy"),
    "ray": ("ray",),
    "serve": (
        "fastapi",
        "starlette",
        "uvicorn",
        "orjson",
        "prometheus_client",
        "multipart",
        "python_multipart",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "httpx",
    ),
    "explain": ("captum", "shap", "lime"),
    "text": ("tokenizers",),
    "postgres": ("psycopg",),
    "s3": ("boto3", "botocore", "s3transfer"),
    "tune": ("optuna",),
    # DP-SGD (opacus); anonymisation: phone numbers (libphonenumber), Luhn and IBAN mod-97 checks (python-stdnum);
    # secure aggregation: X25519, HKDF, AES (cryptography) and Shamir's secret sharing (pycryptodome's Crypto).
    "privacy": ("opacus", "phonenumbers", "stdnum", "cryptography", "Crypto"),
}


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


class UsageError(ModelyardError):
    """Options that cannot go together, or none of the ones one of which is needed.

    Exit code 2, as click's own usage errors (unknown option, missing argument).
    """

    http_status = 400
    exit_code = 2


class SpecError(ModelyardError):
    """The spec (file, dict, REST body or --set override) is invalid."""

    http_status = 422
    exit_code = 2


class ShapeError(SpecError):
    """Layers whose shapes do not fit together, found while building the network."""


class ResourceError(SpecError):
    """The spec asks for more than the machine has (e.g. weights larger than the available memory)."""


class DataError(ModelyardError):
    """Training or evaluation data is missing, unreadable or not what the spec says."""

    http_status = 422
    exit_code = 3


class DataAccessError(DataError):
    """A job names a data file the server may not read (outside its data folders, the store,
    a device, a file over the size limit)."""

    http_status = 403


class InputError(ModelyardError):
    """Input given to a model for prediction does not match what the model expects."""

    http_status = 400
    exit_code = 3


class MalformedRequestError(InputError):
    """A request body cannot be read at all: empty, not UTF-8, not JSON, too deeply nested."""

    http_status = 400


class InvalidInstancesError(InputError):
    """A request body is readable but does not fit the model (shape, dtype, non-finite values)."""

    http_status = 422


class BodyTooLargeError(InputError):
    """A request body is over the size limit; it is refused before (or while) being read."""

    http_status = 413


class UnsupportedMediaTypeError(InputError):
    """A request content type the server has no decoder for."""

    http_status = 415


class InvalidRequestError(InputError):
    """A request's path, query or body fields do not fit the route (FastAPI's request validation)."""

    http_status = 422


class NotFoundError(ModelyardError):
    """A named thing (model, version, run) does not exist."""

    http_status = 404
    exit_code = 4


class StoreError(ModelyardError):
    """The store (database or artifact folder) cannot do what was asked."""

    http_status = 409
    exit_code = 5


class LeaseLostError(StoreError):
    """A worker no longer owns the job it runs (it was reaped, cancelled or handed on)."""


class RoundClosedError(StoreError):
    """A federated client's update for a round that is not open (closed, not yet open, or already answered)."""


class TrainingError(ModelyardError):
    """Training cannot go on (loss became NaN, a checkpoint is unusable, ...)."""

    http_status = 500
    exit_code = 6


class RunPruned(TrainingError):
    """A tuning trial's pruner stopped its run early (its validation curve was not promising).

    Raised from the per-epoch callback; ``workflow`` records the run as ``pruned``, not failed.
    """


class ServerUnavailableError(ModelyardError):
    """A server cannot be reached, or cannot take the request now; retrying later may work."""

    http_status = 503
    exit_code = 7


class QueueFullError(ServerUnavailableError):
    """The model's request queue is full; the client should retry after ``retry_after`` s."""

    def __init__(self, message: str, *, field: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, int(retry_after))


class ShuttingDownError(QueueFullError):
    """The server is draining after SIGTERM and takes no new work."""


class RequestTimeoutError(ServerUnavailableError):
    """The request waited (queue + forward pass) longer than the configured timeout."""

    http_status = 504


class DeploymentUnavailableError(ServerUnavailableError):
    """No replica of the deployment is ready to answer (starting, restarting or failed)."""


class AccessDeniedError(ModelyardError):
    """The server refused the token or its role."""

    http_status = 403
    exit_code = 8


class UnauthorizedError(AccessDeniedError):
    """Missing or wrong bearer token."""

    http_status = 401


class ForbiddenError(AccessDeniedError):
    """The token's role may not do this, or a cookie-carried write lacks its CSRF token."""


class InvalidHostError(AccessDeniedError):
    """A Host header the server does not answer to (DNS rebinding protection)."""

    http_status = 400


class ExportError(ModelyardError):
    """The network cannot be exported to ONNX, or the exported graph disagrees with torch."""

    http_status = 500
    exit_code = 9


class MissingDependencyError(ModelyardError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    http_status = 501
    exit_code = 10

    @classmethod
    def from_import(cls, exc: ImportError, extra: str, needed_for: str) -> MissingDependencyError | None:
        """The error for ``exc`` when it failed to import a package of ``extra``, else None (a real fault)."""
        package = (exc.name or "").split(".")[0]
        if package not in EXTRAS[extra]:
            return None
        return cls(f"{needed_for} needs the Python package {package}: install it with pip install 'modelyard[{extra}]'")


@contextmanager
def optional_dependency(extra: str, needed_for: str) -> Iterator[None]:
    """Inside the block, failing to import a package of ``extra`` is a MissingDependencyError naming the extra."""
    try:
        yield
    except ImportError as exc:
        error = MissingDependencyError.from_import(exc, extra, needed_for)
        if error is None:
            raise
        raise error from None
