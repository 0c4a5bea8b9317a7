"""``ServeConfig``: every server setting, validated once, shared by the CLI and Python API.

Secure by default: a host that is not a loopback address needs an API key, and a config
without one is refused (before any model is loaded or port bound).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator

from modelyard._validation import StrictModel, spec_error_from
from modelyard.hostguard import HostGuard, is_loopback
from modelyard.shared_settings import HEADER_TIMEOUT_S, MAX_DATA_MB
from modelyard.store import paths

if TYPE_CHECKING:  # modelyard.data imports torch; these settings are read by `--help` too
    from modelyard.data.access import DataAccess

__all__ = ["ServeConfig", "WEBHOOK_TOKEN_ENV", "is_loopback"]


# The monitor_webhook_token of a `modelyard serve` (as MODELYARD_API_KEY is its api_key).
WEBHOOK_TOKEN_ENV = "MODELYARD_MONITOR_WEBHOOK_TOKEN"


class ServeConfig(StrictModel):
    """Server settings (``modelyard serve --help`` documents each)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_batch_size: int = Field(64, ge=1, le=65536)
    max_wait_ms: float = Field(2.0, ge=0, le=10_000)
    max_queue: int = Field(1024, ge=1)
    timeout_s: float = Field(10.0, gt=0, description="seconds a request may wait in the queue and the forward pass")
    workers: int = Field(1, ge=1, le=64)
    backend: Literal["auto", "torch", "onnx"] = "auto"
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=2, le=512)
    max_image_pixels: int = Field(2048 * 2048, ge=1)
    max_text_chars: int = Field(10_000, ge=1, le=10_000_000, description="characters per text instance")
    max_audio_seconds: float = Field(60.0, gt=0, le=3600, description="seconds of audio per WAV/FLAC upload")
    # A recording at another sample rate than the model's: refused (422) unless resampled here.
    resample_audio: bool = False
    header_timeout_s: float = HEADER_TIMEOUT_S
    max_explain_cost: int = Field(
        3200, ge=1, description="integrated gradients: instances x steps per explain request (each a forward+backward)"
    )
    api_key: SecretStr | None = None
    # Extra Host header values accepted besides the bound host, localhost and 127.0.0.1
    # (a DNS name the server is reached by, e.g. behind a proxy): the DNS-rebinding guard.
    allowed_hosts: list[str] = []
    # Data files an explanation may read (SHAP/LIME's background: the model's training split).
    # None: any file, as on the CLI; a list (even empty): only under these folders, never the
    # store, /dev, /proc or /sys (modelyard.data.access). Control-plane deployments set it.
    data_dirs: list[str] | None = None
    max_data_mb: int = MAX_DATA_MB
    # Monitoring (docs/monitoring.md): the share of predict requests logged (0: off), how many
    # instances the log keeps, the window each check looks at, and where alerts are POSTed.
    monitor_sample: float = Field(0.0, ge=0, le=1)
    monitor_capacity: int = Field(10_000, ge=10, le=1_000_000)
    monitor_window: int = Field(500, ge=2)
    monitor_webhook: str | None = Field(None, pattern=r"^https?://\S+$")
    # Sent as `Authorization: Bearer` with each alert ($MODELYARD_MONITOR_WEBHOOK_TOKEN; the
    # control plane gives its replicas one for its internal alert route).
    monitor_webhook_token: SecretStr | None = None
    log_level: str = "warning"

    @model_validator(mode="after")
    def _key_for_public_hosts(self) -> ServeConfig:
        if not is_loopback(self.host) and self.api_key is None:
            raise ValueError(
                f"refusing to listen on {self.host} without an API key: set MODELYARD_API_KEY or pass "
                "--api-key-file (clients then send `Authorization: Bearer <key>`), or bind to 127.0.0.1"
            )
        return self

    @classmethod
    def make(cls, **values: Any) -> ServeConfig:
        """Build from keyword values; problems become a one-line SpecError (exit code 2)."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise spec_error_from(exc, prefix="serve") from None

    def host_guard(self) -> HostGuard:
        """The Host rule of this server (the same as the control plane's, modelyard.hostguard)."""
        return HostGuard(self.host, self.port, self.allowed_hosts)

    def data_access(self, home: str | Path | None) -> DataAccess | None:
        """The rule for data files read while serving (None: unrestricted)."""
        if self.data_dirs is None:
            return None
        from modelyard.data.access import DataAccess

        return DataAccess.server(self.data_dirs, home=paths.home(home), max_bytes=self.max_data_mb * 1024 * 1024)

    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key is not None else None

    def public(self) -> dict[str, Any]:
        """Settings safe to show (the key is never listed)."""
        return self.model_dump(exclude={"api_key", "monitor_webhook_token"}) | {"auth": self.api_key is not None}
