"""train.distributed: DDP on 2 workers equals one process at the same global batch.

One local Ray cluster for the module (ray.init(num_cpus=2)); the workers are Ray Train's TorchTrainer
processes (gloo on CPU). The reference is plain torch: the same permutation, one optimizer step per
global batch of 2 x the per-worker batch.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

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


def test_two_ddp_workers_end_with_the_weights_of_one_process_at_the_same_global_batch(tmp_path: Path):
    net = network()
    result = fit(net, data(), spec(), seed=0, checkpoint_dir=tmp_path, progress=False)
    assert_same_weights(net, reference(3))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.runtime["distributed"] == {"engine": "ray", "workers": 2, "backend": "gloo", "global_batch": 16}
    assert set(result.runtime["fast_paths"].values()) == {"off (train.distributed)"}
    assert result.runtime["step"] == "autograd"


def test_distributed_options_are_checked_in_one_line():
    with pytest.raises(Exception, match="workers"):
        TrainSpec.model_validate({"loss": "cross_entropy", "distributed": {"workers": 0}})
    with pytest.raises(Exception, match="train.distributed needs train.checkpoint"):
        TrainSpec.model_validate({"loss": "cross_entropy", "checkpoint": False, "distributed": {"workers": 2}})
