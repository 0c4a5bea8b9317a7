"""The public surface is deliberate: everything in __all__ resolves, nothing else leaks."""

from __future__ import annotations

import subprocess
import sys

import modelyard


def test_every_exported_name_resolves():
    for name in modelyard.__all__:
        assert getattr(modelyard, name) is not None, name


def test_unknown_attribute_raises():
    try:
        modelyard.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_is_light_and_side_effect_free():
    code = "import sys, modelyard; print('torch' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
