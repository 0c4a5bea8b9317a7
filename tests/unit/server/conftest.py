"""Fixtures shared by the control-plane unit tests."""

from tests.support.jobs import clock  # noqa: F401  (a fixture: pytest finds it here)
