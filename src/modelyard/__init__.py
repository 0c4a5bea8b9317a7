"""modelyard: create, train, evaluate, register and use neural-network models from one spec."""

from __future__ import annotations

__version__ = "0.1.0"
