"""`modelyard train SPEC --workers N --engine ray|local`: the train.distributed values, checked by the spec."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from modelyard import workflow
from modelyard.cli.train import ENGINES
from modelyard.spec import DistributedSpec, load_spec
from tests.support.cli import run_cli

SPEC = Path(__file__).resolve().parents[3] / "examples" / "fashion_mlp.yaml"


def test_the_engine_choices_are_the_specs() -> None:
    assert ENGINES == typing.get_args(DistributedSpec.model_fields["engine"].annotation)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The spec ``modelyard train`` would train: validated as workflow.train does, then stopped."""
    seen: dict = {}

    def train(spec, *, overrides=(), **kwargs):
        seen["spec"] = load_spec(spec, overrides)
        raise KeyboardInterrupt  # the CLI's own path for a stopped run; nothing trains

    monkeypatch.setattr(workflow, "train", train)
    return seen


def test_workers_and_engine_set_train_distributed(seen: dict) -> None:
    run_cli("train", str(SPEC), "--workers", "2", "--engine", "local")
    assert seen["spec"].train.distributed == DistributedSpec(workers=2, engine="local")


def test_the_options_win_over_set(seen: dict) -> None:
    run_cli("train", str(SPEC), "--set", "train.distributed.workers=4", "--workers", "3")
    dist = seen["spec"].train.distributed
    assert (dist.workers, dist.engine) == (3, "ray")  # ray: the spec's default engine


def test_without_the_options_the_spec_is_unchanged(seen: dict) -> None:
    run_cli("train", str(SPEC))
    assert seen["spec"].train.distributed is None


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--workers", "0"], "train.distributed.workers"),
        (["--workers", "2000"], "train.distributed.workers"),
        (["--engine", "local"], "train.distributed.workers"),  # an engine needs a number of workers
    ],
)
def test_bad_values_are_the_specs_one_line_errors(args: list[str], fragment: str) -> None:
    res = run_cli("train", str(SPEC), *args)
    assert res.code != 0 and res.err.startswith("error: ") and res.err.count("\n") == 1, res.err
    assert fragment in res.err and "Traceback" not in res.err, res.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--workers", "two"], "'two' is not a valid integer"),
        (["--engine", "spark"], "'spark' is not one of 'ray', 'local'"),
    ],
)
def test_untyped_values_are_usage_errors(args: list[str], fragment: str) -> None:
    res = run_cli("train", str(SPEC), *args)
    assert res.code == 2 and res.err.count("\n") == 1 and fragment in res.err, res.err


def test_a_spec_that_cannot_train_distributed_says_why() -> None:
    xor = SPEC.with_name("xor.yaml")  # checkpoint: false
    res = run_cli("train", str(xor), "--workers", "2")
    assert res.code != 0 and res.err.count("\n") == 1 and "train.distributed needs train.checkpoint" in res.err, res.err


def test_resume_takes_no_distributed_options() -> None:
    res = run_cli("train", "--resume", "r1", "--workers", "2")
    assert res.code == 2 and "--workers" in res.err and res.err.count("\n") == 1, res.err
