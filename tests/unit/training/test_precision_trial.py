"""``precision: auto`` on a CPU with bf16 hardware: the timed trial at fit start, and exact resume.

This machine may have no bf16 hardware, so the tests say it has (``cpu_has_bf16``) and that the
network is big enough for the rule (``worth_bf16_on_cpu``); the trial's clock is scripted where a
test needs one outcome. References: explicit ``precision: fp32`` / ``bf16`` runs with the same seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from modelyard.spec import TrainSpec
from modelyard.training import fit, load_checkpoint, precision_trial, runtime, setup
from modelyard.training.precision_trial import MARGIN, MAX_STEPS, TRIAL_STEPS


class Interrupt(Exception):
    pass


def network() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    net.output_activation, net.input_shape = "softmax", (8,)
    return net


def data() -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = torch.randn(96, 8, generator=g) + nn.functional.pad(nn.functional.one_hot(y, 3).float(), (0, 5))
    return SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=None, test=None, num_classes=3)


def spec(precision: str, epochs: int = 2) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": 32,
            "epochs": epochs,
            "precision": precision,
        }
    )


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an AMX / AVX512-BF16 CPU with a network the rule sends to bf16."""
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(setup, "worth_bf16_on_cpu", lambda network, batch_size: True)


def scripted_clock(monkeypatch: pytest.MonkeyPatch, fp32_ms: float, bf16_ms: float) -> list[int]:
    """Each timed step still runs; its time is scripted (the trial alternates fp32, bf16)."""
    calls: list[int] = []
    times: Iterator[float] = itertools.cycle([fp32_ms, bf16_ms])

    def timed(step) -> float:
        step()
        calls.append(1)
        return next(times)

    monkeypatch.setattr(precision_trial, "_time_ms", timed)
    return calls


def weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    ("fp32_ms", "bf16_ms", "chosen", "steps"),
    [
        (100.0, 100.0 * MARGIN, "bf16", TRIAL_STEPS),
        (100.0, 100.0 * MARGIN + 0.01, "fp32", TRIAL_STEPS),
        (100.0, 250.0, "fp32", TRIAL_STEPS),
        (10.0, 5.0, "bf16", 17),  # short steps: timed until 0.25 s of them (17 pairs of 15 ms)
        (1.0, 2.0, "fp32", MAX_STEPS),
    ],
)
def test_the_trial_keeps_bf16_only_when_it_is_clearly_faster(
    bf16_cpu: None, monkeypatch: pytest.MonkeyPatch, fp32_ms: float, bf16_ms: float, chosen: str, steps: int
) -> None:
    calls = scripted_clock(monkeypatch, fp32_ms, bf16_ms)
    result = fit(network(), data(), spec("auto"), seed=1, progress=False)
    assert len(calls) == 2 * steps
    assert result.runtime["precision"] == chosen
    assert result.runtime["precision_trial"] == {
        "fp32_ms": fp32_ms,
        "bf16_ms": round(bf16_ms, 3),
        "steps": steps,
        "chosen": chosen,
    }
    assert result.runtime["step"] == "dense-fused"  # the trial changed nothing of the path the loop takes


@pytest.mark.parametrize("chosen", ["fp32", "bf16"])
def test_a_run_after_the_trial_ends_with_the_weights_of_the_explicit_precision(
    bf16_cpu: None, monkeypatch: pytest.MonkeyPatch, chosen: str
) -> None:
    explicit = network()
    fit(explicit, data(), spec(chosen), seed=4, progress=False)
    scripted_clock(monkeypatch, 10.0, 5.0 if chosen == "bf16" else 20.0)
    auto = network()
    result = fit(auto, data(), spec("auto"), seed=4, progress=False)
    assert result.runtime["precision"] == chosen
    # The trial ran on a copy, under fork_rng: same weights, same dropout draws, same sample order.
    for name, value in weights(explicit).items():
        assert torch.equal(auto.state_dict()[name], value), name


def test_a_resumed_run_keeps_the_precision_its_trial_chose(
    bf16_cpu: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    straight = network()
    fit(straight, data(), spec("bf16", epochs=3), seed=2, progress=False)
    scripted_clock(monkeypatch, 10.0, 5.0)  # the first start: bf16 is faster

    def interrupt(epoch: int, _row: dict) -> None:
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(network(), data(), spec("auto", 3), seed=2, checkpoint_dir=tmp_path, on_epoch_end=interrupt, progress=False)
    assert load_checkpoint(tmp_path).extra["runtime"]["precision"] == "bf16"
    calls = scripted_clock(monkeypatch, 10.0, 50.0)  # were it timed again, fp32 would win
    resumed = network()
    result = fit(resumed, data(), spec("auto", 3), seed=2, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert calls == [] and result.runtime["precision"] == "bf16"
    assert result.runtime["precision_trial"]["chosen"] == "bf16"
    for name, value in weights(straight).items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_no_trial_where_the_precision_is_given_or_the_cpu_has_no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = scripted_clock(monkeypatch, 10.0, 5.0)
    monkeypatch.setattr(setup, "worth_bf16_on_cpu", lambda network, batch_size: True)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert fit(network(), data(), spec("auto"), seed=1, progress=False).runtime["precision"] == "fp32"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    for given in ("fp32", "bf16"):
        result = fit(network(), data(), spec(given), seed=1, progress=False)
        assert result.runtime["precision"] == given and "precision_trial" not in result.runtime
    assert calls == []


def test_the_trial_times_both_precisions_on_this_cpu() -> None:
    """Unscripted: real steps of a real network, and the choice follows the measured times."""
    net, loss = network(), nn.CrossEntropyLoss()
    before = weights(net)
    x, y = data().train.x[:32], data().train.y[:32]
    state = torch.get_rng_state()
    for dense in (True, False):
        result = precision_trial.precision_trial(net, x, y, loss, threads=1, dense=dense)
        assert result.fp32_ms > 0 and result.bf16_ms > 0 and TRIAL_STEPS <= result.steps <= MAX_STEPS
        assert result.chosen.name == ("bf16" if result.bf16_ms <= MARGIN * result.fp32_ms else "fp32")
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert all(p.grad is None for p in net.parameters())


def test_the_trial_leaves_a_pruned_batch_norm_network_as_it_was() -> None:
    """A pruned layer's ``weight`` is computed from ``weight_orig`` (no deep copy can be made of it);
    batch norm's running statistics move in train mode: the trial puts both back, and the mode."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    prune.l1_unstructured(net[0], "weight", amount=0.5)
    net.eval()
    before = weights(net)
    x, y = data().train.x[:32], data().train.y[:32]
    result = precision_trial.precision_trial(net, x, y, nn.CrossEntropyLoss(), threads=1, dense=False)
    assert TRIAL_STEPS <= result.steps <= MAX_STEPS
    after = net.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert "weight_orig" in dict(net[0].named_parameters()) and int(net[1].num_batches_tracked) == 0
    assert all(p.grad is None for p in net.parameters())
    assert not any(m.training for m in net.modules())
