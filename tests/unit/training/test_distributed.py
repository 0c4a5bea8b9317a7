"""train.distributed: DDP on 2 workers equals one process at the same global batch, killed or not.

One local Ray cluster for the module (ray.init(num_cpus=2)); the workers are Ray Train's TorchTrainer
processes, or (engine local) processes spawned by torch.multiprocessing (gloo on CPU either way). The reference is plain torch: the same permutation, one optimizer step per
global batch of 2 x the per-worker batch.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from modelyard.errors import TrainingError
from modelyard.spec import TrainSpec
from modelyard.training import fit

ray = pytest.importorskip("ray")

# Ray's own deprecations (raised inside Ray Train's imports), not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

PER_WORKER = 8
N = 64  # 4 global batches of 16 per epoch
# DDP averages the two workers' mean gradients in fp32 (gloo all-reduce); one process takes the
# mean over 16 samples: the same number up to float rounding, compounded over 3 epochs of Adam.
ATOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def network() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    net.output_activation, net.input_shape = "softmax", (4,)
    return net


def data() -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (N,), generator=g)
    x = torch.randn(N, 4, generator=g) + nn.functional.one_hot(y, 4).float()
    return SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=None, test=None, num_classes=3)


def spec(epochs: int = 3, **distributed) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": PER_WORKER,
            "epochs": epochs,
            "precision": "fp32",
            "device": "cpu",
            "metrics": ["accuracy"],
            "distributed": {"workers": 2, "engine": "ray", **distributed},
        }
    )


def reference(epochs: int) -> nn.Module:
    """Plain torch, one process: fit's permutation (a seeded CPU generator), batches of 2 x PER_WORKER."""
    net, d = network(), data()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(N, generator=gen)
        for start in range(0, N, 2 * PER_WORKER):
            idx = perm[start : start + 2 * PER_WORKER]
            loss = nn.functional.cross_entropy(net(d.train.x[idx]), d.train.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def assert_same_weights(net: nn.Module, ref: nn.Module) -> None:
    for (name, a), b in zip(net.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=ATOL, rtol=0), (name, (a - b).abs().max())


@pytest.mark.parametrize("engine", ["ray", "local"])
def test_two_ddp_workers_end_with_the_weights_of_one_process_at_the_same_global_batch(tmp_path: Path, engine):
    net = network()
    result = fit(net, data(), spec(engine=engine), seed=0, checkpoint_dir=tmp_path, progress=False)
    assert_same_weights(net, reference(3))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.runtime["distributed"] == {
        "engine": engine,
        "workers": 2,
        "backend": "gloo",
        "strategy": "ddp",
        "global_batch": 16,
    }
    assert set(result.runtime["fast_paths"].values()) == {"off (train.distributed)"}
    assert result.runtime["step"] == "autograd"


def test_distributed_options_are_checked_in_one_line():
    with pytest.raises(Exception, match="workers"):
        TrainSpec.model_validate({"loss": "cross_entropy", "distributed": {"workers": 0}})
    with pytest.raises(Exception, match="train.distributed needs train.checkpoint"):
        TrainSpec.model_validate({"loss": "cross_entropy", "checkpoint": False, "distributed": {"workers": 2}})


class KillOnce:
    """The training loss, except that worker rank 1 SIGKILLs itself at its 6th step (mid epoch 2) once.

    The marker file makes the kill happen on the first worker group only: the replaced group
    resumes from epoch 1's checkpoint and trains to the end. Injected through ``fit``'s public
    ``loss_fn`` (distillation's hook), so no test switch lives in the product.
    """

    def __init__(self, marker: Path) -> None:
        self.marker, self.steps = marker, 0

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        if self.steps == 6 and torch.distributed.get_rank() == 1 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return nn.functional.cross_entropy(out, y)


@pytest.mark.parametrize("engine", ["ray", "local"])
def test_a_worker_killed_mid_epoch_is_replaced_and_the_run_ends_as_an_uninterrupted_one(tmp_path: Path, engine):
    # Ray workers import by value what the driver's pytest path holds and theirs does not.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "killed"
    net = network()
    result = fit(
        net,
        data(),
        spec(engine=engine),
        seed=0,
        checkpoint_dir=tmp_path / "run",
        progress=False,
        loss_fn=KillOnce(marker),
    )
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker really died, not this process
    # Resumed from epoch 1's checkpoint (weights, optimizer, RNG): the same weights as never killed.
    assert_same_weights(net, reference(3))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


class AlwaysKill(KillOnce):
    """Rank 1 dies at its 6th step in every worker group."""

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.marker.unlink(missing_ok=True)
        return super().__call__(out, y)


def test_a_worker_that_keeps_dying_fails_the_run_after_max_failures(tmp_path: Path):
    with pytest.raises(TrainingError, match="after 1 restarts"):
        fit(
            network(),
            data(),
            spec(engine="local", max_failures=1),
            seed=0,
            checkpoint_dir=tmp_path / "run",
            progress=False,
            loss_fn=AlwaysKill(tmp_path / "killed"),
        )
