"""click's usage errors are one line like every other error: `error: ... (see 'modelyard CMD --help')`, exit 2."""

from __future__ import annotations

import pytest

from modelyard.errors import UsageError
from tests.support.cli import run_cli, run_process

CASES = {
    "missing argument": (["serve"], "Missing argument 'MODELS...'", "modelyard serve"),
    "bad choice": (
        ["serve", "m", "--backend", "gpu"],
        "'gpu' is not one of 'auto', 'torch', 'onnx'",
        "modelyard serve",
    ),
    "bad number": (["serve", "m", "--port", "abc"], "'abc' is not a valid integer", "modelyard serve"),
    "unknown option with did-you-mean": (
        ["serve", "m", "--prot", "1"],
        "Did you mean one of: '--host', '--port'?",
        "modelyard serve",
    ),
    "unknown top-level option": (["--bogus"], "No such option '--bogus'", "modelyard"),
    "unknown command with did-you-mean": (["servee"], "Did you mean one of: 'serve', 'server'?", "modelyard"),
    "unknown nested command": (["models", "alias", "sett"], "Did you mean 'set'?", "modelyard models alias"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_usage_errors_are_one_line(case: str) -> None:
    args, fragment, path = CASES[case]
    res = run_cli(*args)
    assert res.code == UsageError.exit_code == 2, res.err
    assert res.err.startswith("error: ") and res.err.count("\n") == 1, res.err
    assert fragment in res.err and res.err.rstrip().endswith(f"(see '{path} --help')"), res.err
    assert "Usage:" not in res.err and "Try '" not in res.err


def test_the_real_process_too() -> None:
    res = run_process("servee")
    assert (
        res.code == 2
        and res.err
        == "error: No such command 'servee'. (Did you mean one of: 'serve', 'server'?) (see 'modelyard --help')\n"
    )


def test_a_group_without_a_command_still_shows_its_help() -> None:
    res = run_cli("server", "token", "--help")
    assert res.code == 0 and "Usage:" in res.out
