"""Light commands stay light: what each imports is guarded (benchmarks/cli_bench.py times them).

Each command runs in a fresh interpreter; the test lists the heavy packages it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelyard
from tests.support.serving import register

SRC = str(Path(modelyard.__file__).resolve().parents[1])
HEAVY = ("torch", "torchmetrics", "pandas", "scipy", "matplotlib", "sklearn", "onnxruntime", "fastapi", "captum")
PROBE = """
import json, sys
from click.testing import CliRunner
from modelyard.cli.main import cli
result = CliRunner().invoke(cli, sys.argv[1:], catch_exceptions=False)
assert result.exit_code == 0, result.output
heavy = set(json.loads(sys.stdin.read()))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


def _imported(home: Path, *args: str, heavy: tuple[str, ...] = HEAVY) -> set[str]:
    env = {**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        input=json.dumps(heavy),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ("models",),
        ("models", "show", "clf:1"),  # from the summary stored at registration (modelyard.version_summary)
        ("models", "show", "clf:1", "--json"),
        ("models", "show", "clf"),  # the bare name's rule and the lineage come from the store's rows
        ("models", "alias", "list"),
        ("models", "card", "clf:1"),  # metadata only: JSON files, rows, the safetensors header (modelyard.cards)
        ("runs",),
        ("jobs", "--help"),
        ("deployments", "--help"),
        ("--help",),
        # The help of server commands prints their settings models' defaults (cli/_options.py).
        ("serve", "--help"),
        ("server", "--help"),
        ("deployments", "create", "--help"),
    ],
)
def test_metadata_commands_import_no_heavy_package(home: Path, args: tuple[str, ...]) -> None:
    register("clf", home)
    assert _imported(home, *args) == set()


@pytest.mark.parametrize("args", [("models", "gc", "--dry-run"), ("models", "delete", "clf:1")])
def test_registry_writes_import_no_heavy_package(home: Path, args: tuple[str, ...]) -> None:
    """A delete asks the control plane's tables (server/models/in_use.py) through the store, never FastAPI or torch."""
    register("clf", home)
    assert _imported(home, *args) == set()


@pytest.mark.parametrize(
    ("name", "text"),
    [("x.json", json.dumps([[0.1, 0.2, 0.3, 0.4]])), ("x.csv", "a,b,c,d\n0.1,0.2,0.3,0.4\n")],  # CSV: no pandas
)
def test_predict_imports_torch_and_nothing_else_heavy(home: Path, tmp_path: Path, name: str, text: str) -> None:
    register("clf", home)
    sample = tmp_path / name
    sample.write_text(text)
    assert _imported(home, "predict", "clf", str(sample)) == {"torch"}


def test_train_never_imports_optuna(home: Path, tmp_path: Path) -> None:
    import yaml

    from tests.support.tuning import tiny_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(epochs=1)))
    assert _imported(home, "train", str(spec), heavy=("optuna", "torch")) == {"torch"}
