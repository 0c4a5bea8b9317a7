"""Numbers printed to people are rounded by one rule (modelyard._numbers, the model card's);
--json keeps the stored values in full."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelyard._numbers import number
from modelyard.cli._fmt import fmt
from modelyard.training.progress import format_metrics
from tests.support.cli import run_cli
from tests.support.compression import train_digits

DECIMAL = re.compile(r"\d+\.\d+")


def _long(text: str) -> list[str]:
    """Decimals with more than 4 significant digits (0.8823999762535095, 31080.0627): more than a person reads."""
    return [d for d in DECIMAL.findall(text) if len(d.replace(".", "").lstrip("0")) > 4]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.8823999762535095, "0.8824"),
        (31080.0627, "31,080"),
        (1.0, "1"),
        (3.2e-05, "3.2e-05"),
        (0.0001, "0.0001"),
        (float("nan"), "nan"),
        (None, "-"),
        (7, "7"),
    ],
)
def test_fmt_rounds_like_the_model_card(value: float | None, shown: str) -> None:
    assert fmt(value) == shown
    if isinstance(value, float):
        assert fmt(value) == number(value)


def test_progress_lines_round_the_same_way() -> None:
    assert format_metrics({"epoch": 3, "loss": 0.8823999762535095, "samples_per_s": 31080.0627}) == (
        "loss 0.8824  samples_per_s 31,080"
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("numbers")
    return home, train_digits(home, epochs=2, hidden=(16,))


def test_commands_print_no_long_floats(home: tuple[Path, str]) -> None:
    path, ref = home
    base = ("--home", str(path))
    runs = json.loads(run_cli(*base, "runs", "list", "--json").out)
    run_id = runs[0]["id"]
    for args in (
        ["models", "list"],
        ["models", "show", ref],
        ["runs", "list"],
        ["runs", "show", run_id],
        ["eval", ref],
    ):
        r = run_cli(*base, *args)
        assert r.code == 0, r.err
        assert not _long(r.out), (args, _long(r.out))
    shown = run_cli(*base, "runs", "show", run_id).out
    full = json.loads(run_cli(*base, "runs", "show", run_id, "--json").out)
    first = full["history"][0]
    assert fmt(first["loss"]) in shown and fmt(first["samples_per_s"]) in shown
    assert str(first["loss"]) not in shown and len(repr(first["loss"])) > 8  # --json has the full float
    test = json.loads(run_cli(*base, "models", "show", ref, "--json").out)["test"]
    assert fmt(test["loss"]) in run_cli(*base, "models", "show", ref).out and len(repr(test["loss"])) > 8
