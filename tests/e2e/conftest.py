"""Fixtures of the console's browser tests (a real server over ``home``, headless Chromium, the screenshot folder)."""

from tests.support.browser import browser, screenshots, server  # noqa: F401  (fixtures: pytest finds them here)
