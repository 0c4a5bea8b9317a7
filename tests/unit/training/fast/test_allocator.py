"""glibc's keep-freed-memory setting (training.fast.allocator): chosen by entry points, reported by fit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modelyard.training.fast.allocator import allocator_state, keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_allocator_keeps_freed_memory_unless_told_not_to() -> None:
    assert keep_freed_memory() == "glibc-kept"
    assert keep_freed_memory() == "glibc-kept"  # idempotent
    code = "from modelyard.training.fast.allocator import keep_freed_memory as k; print(k())"
    assert allocator_state() == "glibc-kept"
    for env, expected in [
        ({}, "glibc-kept"),
        ({"MODELYARD_ALLOCATOR": "default"}, "default"),
        ({"LD_PRELOAD": "libjemalloc.so.2-not-here"}, "default"),
        ({"MODELYARD_FAST_PATHS": "0"}, "default"),  # the one switch turns this off too
    ]:
        assert _python(code, env) == expected


def _python(code: str, env: dict[str, str]) -> str:
    """``code``'s last printed line in a fresh interpreter (the setting is process-wide), with this checkout."""
    base = {"PATH": "", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "MODELYARD_HOME": os.environ["MODELYARD_HOME"]}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**base, **env}, check=True)
    return done.stdout.strip().splitlines()[-1]


_FIT = """
import torch
from types import SimpleNamespace
from modelyard.spec import TrainSpec
from modelyard.training import fit
from modelyard.training.fast.allocator import allocator_state
x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
data = SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=None, num_classes=2)
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
spec = TrainSpec.model_validate({"loss": "cross_entropy", "epochs": 1, "batch_size": 16})
result = fit(net, data, spec, seed=0, progress=False)
print(result.runtime["allocator"], allocator_state())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_fit_leaves_the_process_setting_to_the_entry_points(home) -> None:
    assert _python(_FIT, {}) == "default default"  # a library call changes nothing process-wide
    train = (
        "from click.testing import CliRunner; from modelyard.cli.main import cli;"
        "from modelyard.training.fast.allocator import allocator_state;"
        "r = CliRunner().invoke(cli, ['train', 'examples/xor.yaml', '--set', 'train.epochs=1', '--no-progress']);"
        "print(r.exit_code, allocator_state())"
    )
    assert _python(train, {}) == "0 glibc-kept"  # `modelyard train` chooses it for its process
