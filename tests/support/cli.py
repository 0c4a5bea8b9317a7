"""Helpers for driving the CLI in tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from click.testing import CliRunner

from modelyard.cli.main import cli


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Result:
    """In-process CLI call (fast); stdout and stderr kept apart."""
    res = CliRunner().invoke(cli, list(args), prog_name="modelyard", catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


def run_process(*args: str, timeout: float = 600) -> Result:
    """The real `python -m modelyard` process, as a person runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
