"""The one error hierarchy: exit codes as docs/cli.md lists them; a missing optional package names its extra."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from modelyard import errors
from modelyard.errors import EXTRAS, MissingDependencyError, ModelyardError, optional_dependency
from modelyard.predict import Predictor
from modelyard.serving.backends import select_backend
from modelyard.serving.onnx_backend import OnnxBackend
from tests.support.serving import register

ROOT = Path(__file__).resolve().parents[2]


def _documented_exit_codes() -> dict[int, list[str]]:
    """docs/cli.md's exit-code table: code -> the error classes listed with it."""
    text = (ROOT / "docs" / "cli.md").read_text()
    rows = re.findall(r"^\| (\d+) \| [^|]+ \|([^|]*)\|$", text, flags=re.M)
    table: dict[int, list[str]] = {}
    for code, names in rows:
        assert int(code) not in table, f"exit code {code} has two rows in docs/cli.md"
        table[int(code)] = re.findall(r"`(\w+)`", names)
    return table


def _error_classes() -> dict[str, type[ModelyardError]]:
    found = {n: getattr(errors, n) for n in errors.__all__}
    return {n: c for n, c in found.items() if isinstance(c, type) and issubclass(c, ModelyardError)}


def test_exit_codes_are_those_docs_cli_md_lists() -> None:
    table = _documented_exit_codes()
    assert {0, 1, 130} <= set(table) and not table[0] and not table[130]
    listed = {name: code for code, names in table.items() for name in names}
    assert sum(len(names) for names in table.values()) == len(listed), "a class is listed twice"
    classes = _error_classes()
    assert set(listed) == set(classes)  # every class documented, nothing documented that is not a class
    for name, cls in classes.items():
        assert cls.exit_code == listed[name], f"{name} exits {cls.exit_code}, docs/cli.md says {listed[name]}"


def test_each_exit_code_means_one_thing() -> None:
    classes = _error_classes()
    # 1 is the unexpected internal error; no deliberate error may exit with it.
    assert [n for n, c in classes.items() if c.exit_code == 1] == ["ModelyardError"]
    assert all(c.exit_code not in (0, 130) for c in classes.values())
    # A class that sets its own code starts a family; a family shares its code only with its own
    # subclasses, except the two the table pairs on purpose (spec/usage as click does; data/input).
    own = {n: c.exit_code for n, c in classes.items() if "exit_code" in vars(c)}
    shared = {code for code in own.values() if list(own.values()).count(code) > 1}
    assert {code: sorted(n for n, c in own.items() if c == code) for code in shared} == {
        2: ["SpecError", "UsageError"],
        3: ["DataError", "InputError"],
    }


def test_every_extra_named_in_errors_is_one_of_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)


def test_a_missing_package_of_the_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if onnxruntime were not installed
    with pytest.raises(MissingDependencyError) as err, optional_dependency("serve", "The ONNX Runtime backend"):
        import onnxruntime  # noqa: F401
    assert str(err.value) == (
        "The ONNX Runtime backend needs the Python package onnxruntime: install it with pip install 'modelyard[serve]'"
    )
    assert err.value.exit_code == 10 and err.value.http_status == 501


def test_an_import_fault_outside_the_extra_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy_not_an_extra", None)
    with pytest.raises(ModuleNotFoundError), optional_dependency("serve", "x"):
        import numpy_not_an_extra  # noqa: F401


def test_onnx_backend_without_onnxruntime_names_the_extra_and_auto_serves_with_torch(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = Predictor.load(register("clf", home), home=home)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modelyard\[serve\]'"):
        OnnxBackend.from_predictor(predictor)
    with pytest.raises(MissingDependencyError, match="onnxruntime"):
        select_backend(predictor, "onnx")
    chosen = select_backend(predictor, "auto")
    assert chosen.info["name"] == "torch" and "pip install 'modelyard[serve]'" in chosen.info["reason"]


@pytest.mark.parametrize(
    "command, blocked, needed_for",
    [
        (["serve", "iris"], "fastapi", "The prediction server"),
        (["serve", "iris"], "uvicorn", "The prediction server"),
        (["server"], "fastapi", "The control plane"),
        (["server"], "uvicorn", "The control plane"),
        (["jobs", "list"], "httpx", "The control plane client"),
        (["deployments", "list"], "httpx", "The control plane client"),
    ],
)
def test_cli_without_the_serve_extra_says_how_to_install_it(
    command: list[str], blocked: str, needed_for: str, home: Path
) -> None:
    register("clf", home, as_name="iris")
    code = (  # a finder that says the package is not installed, as Python does for a missing one
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] == {blocked!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from modelyard.cli.main import cli\n"
        f"cli({['--home', str(home), *command]!r}, prog_name='modelyard')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == MissingDependencyError.exit_code, proc.stderr
    assert "Traceback" not in proc.stderr  # `serve` says what it serves first; the error is the last line
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {needed_for} needs the Python package {blocked}: install it with pip install 'modelyard[serve]'"
    )
