"""The public surface is deliberate: everything in __all__ resolves, nothing else leaks."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

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


# The public surface, written out: a name joins or leaves it only by changing this list
# (as httpx's tests/test_exported_members.py pins httpx.__all__).
PUBLIC = [
    "__version__",
    "Spec",
    "load_spec",
    "train",
    "resume",
    "TrainResult",
    "load",
    "Predictor",
    "evaluate",
    "serve",
    "explain",
    "compress",
    "export",
    "tune",
    "TuneResult",
    "ModelyardError",
    "SpecError",
    "ShapeError",
    "DataError",
    "InputError",
    "NotFoundError",
    "StoreError",
    "TrainingError",
]


def test_all_is_the_written_list_and_nothing_else_is_public():
    assert modelyard.__all__ == PUBLIC
    assert dir(modelyard) == sorted(PUBLIC)
    leaked = [
        name
        for name, value in vars(modelyard).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name not in PUBLIC
    ]
    assert leaked == []


def test_top_level_functions_are_the_functions_even_after_their_modules_are_imported():
    # modelyard.compression.export is a module and a function's name: the function must win.
    code = (
        "import modelyard.compression.export as e, modelyard.compression.api as c, modelyard.explaining.api as x\n"
        "import modelyard\n"
        "print(modelyard.export is e.export, modelyard.compress is c.compress, modelyard.explain is x.explain)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "True"]


def test_lazy_attributes_are_written_once():
    # Every package that loads names on first use does it through modelyard._lazy.
    src = Path(modelyard.__file__).parent
    own = [p.relative_to(src).as_posix() for p in src.rglob("*.py") if "def __getattr__" in p.read_text()]
    assert own == ["_lazy.py"]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_another_modules_private_name():
    # A helper another module needs is public where it lives (or moves where it belongs).
    src = Path(modelyard.__file__).parent.parent
    files = {
        ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (src / "modelyard").rglob("*.py")
    }
    found = []
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        modules = {}  # local name -> the modelyard module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("modelyard"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in files:
                        modules[alias.asname or alias.name] = full
                    elif _private(alias.name) and node.module != name:
                        found.append(f"{name}:{node.lineno} imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                modules.update({a.asname: a.name for a in node.names if a.asname and a.name in files})
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
                target = modules.get(node.value.id)
                if target is not None and target != name:
                    found.append(f"{name}:{node.lineno} uses {target}.{node.attr}")
    assert found == []
