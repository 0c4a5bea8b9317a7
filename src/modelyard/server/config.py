"""``ServerConfig``: the control plane's settings, validated once at the boundary.

The CLI (``modelyard server --port ... --workers ...``), the Python API and the tests all
build one of these; a bad value is a one-line SpecError naming the ``server.<field>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, field_validator, model_validator

from modelyard._validation import StrictModel, spec_error_from
from modelyard.hostguard import HostGuard, is_loopback
from modelyard.shared_settings import HEADER_TIMEOUT_S, MAX_DATA_MB
from modelyard.store import paths

if TYPE_CHECKING:  # modelyard.data imports torch; these settings are read by `--help` too
    from modelyard.data.access import DataAccess

__all__ = ["ServerConfig", "is_loopback"]


class ServerConfig(StrictModel):
    """Settings of ``modelyard server`` (each one is a CLI option of the same name)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=0, le=64, description="training worker processes (0: API only)")
    lease_s: float = Field(30.0, gt=0, le=86_400, description="a job whose worker is silent this long is reaped")
    heartbeat_s: float = Field(5.0, gt=0, le=3_600, description="how often a worker renews its lease")
    max_attempts: int = Field(3, ge=1, le=100, description="worker losses a job survives before it fails")
    reap_interval_s: float = Field(2.0, gt=0, le=3_600)
    # Where Ray Serve's HTTP proxy listens (on 127.0.0.1) for deployments with engine ray.
    ray_serve_port: int = Field(8000, ge=1, le=65535, description="port of Ray Serve's proxy (engine ray)")
    header_timeout_s: float = HEADER_TIMEOUT_S
    home: Path | None = None
    # The only folders a job may read data from (none by default: built-in data sets only);
    # see modelyard.data.access for what is refused inside them.
    data_dirs: list[Path] = []
    max_data_mb: int = MAX_DATA_MB
    allowed_origins: list[str] = []
    # Extra Host header values accepted besides the bound host, localhost and 127.0.0.1
    # (a DNS name the server is reached by, e.g. behind a proxy).
    allowed_hosts: list[str] = []

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() or c in "/?#@" for c in value):
            raise ValueError(f"expected an IP address or host name such as 127.0.0.1, received {value!r}")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") != 2:
                raise ValueError(f"expected origins such as https://console.example.com, received {origin!r}")
        return [o.rstrip("/").lower() for o in value]

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower() for h in value if h.strip()]

    @field_validator("data_dirs")
    @classmethod
    def _data_dirs(cls, value: list[Path]) -> list[Path]:
        folders = [Path(os.path.realpath(Path(v).expanduser())) for v in value]
        for folder in folders:
            if not folder.is_dir():
                raise ValueError(f"expected existing folders, received {str(folder)!r}")
        return folders

    @model_validator(mode="after")
    def _lease_longer_than_heartbeat(self) -> ServerConfig:
        if self.lease_s <= self.heartbeat_s:
            raise ValueError(
                f"lease_s ({self.lease_s:g}) must be longer than heartbeat_s ({self.heartbeat_s:g}), "
                "or every job would be reaped between two heartbeats; use lease_s >= 3 x heartbeat_s"
            )
        return self

    @classmethod
    def make(cls, **values: Any) -> ServerConfig:
        """Build from keyword values (None means default); problems become one-line SpecErrors."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise spec_error_from(exc, prefix="server") from None

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect."""
        return is_loopback(self.host)

    def store_home(self) -> Path:
        """The resolved store folder (``home`` or ``$MODELYARD_HOME`` or ``~/.modelyard``)."""
        return paths.home(self.home)

    def data_access(self) -> DataAccess:
        """What a job may read: the data folders, never the store or a device, within the size cap."""
        from modelyard.data.access import DataAccess

        return DataAccess.server(self.data_dirs, home=self.store_home(), max_bytes=self.max_data_mb * 1024 * 1024)

    def url(self) -> str:
        return self.host_guard().url()

    def host_guard(self) -> HostGuard:
        """The Host/Origin rule of this server (DNS-rebinding guard, shared with `modelyard serve`)."""
        return HostGuard(self.host, self.port, self.allowed_hosts)
