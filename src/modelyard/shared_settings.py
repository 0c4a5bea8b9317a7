"""Settings both servers have (``modelyard serve`` and ``modelyard server``), defined once.

Each is a pydantic ``Field`` that ``ServeConfig`` and ``ServerConfig`` both declare, so the
default, the bounds and the description cannot drift apart; the CLI reads its defaults from
those models (``modelyard.cli._options``).
"""

from __future__ import annotations

from pydantic import Field

__all__ = ["HEADER_TIMEOUT_S", "MAX_DATA_MB"]

HEADER_TIMEOUT_S = Field(
    10.0, gt=0, le=3600, description="seconds a client may take to send a request's headers (then closed)"
)
MAX_DATA_MB = Field(4096, ge=1, le=16 * 1024 * 1024, description="size cap of one data source read for a request")
