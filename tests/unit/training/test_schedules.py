"""Schedules: the lr sequence equals torch's scheduler; state survives JSON."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from torch.optim import lr_scheduler

from modelyard.errors import SpecError
from modelyard.spec import TrainSpec
from modelyard.training.schedules import SCHEDULES

EPOCHS, STEPS = 6, 4


def optimizer(lr: float = 0.1, momentum: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=momentum)


def ours(raw, opt, epochs=EPOCHS, steps=STEPS):
    return SCHEDULES.build(SCHEDULES.parse(raw, field="train.schedule"), opt, epochs=epochs, steps_per_epoch=steps)


def run_ours(schedule, opt, val_losses=None) -> list[float]:
    """lr before every optimizer step of every epoch, as the loop drives the schedule."""
    seen = []
    for epoch in range(EPOCHS):
        for _ in range(STEPS):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.step_batch()
        schedule.step_epoch({"val_loss": val_losses[epoch] if val_losses else 0.0, "loss": 0.0})
    return seen


def run_torch(scheduler, opt, *, per_batch: bool, val_losses=None) -> list[float]:
    seen = []
    for epoch in range(EPOCHS):
        for _ in range(STEPS):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_batch:
                scheduler.step()
        if not per_batch:
            scheduler.step(val_losses[epoch]) if val_losses else scheduler.step()
    return seen


def test_step_and_exponential_move_per_epoch():
    a, b = optimizer(), optimizer()
    assert run_ours(ours({"step": 2, "gamma": 0.5}, a), a) == run_torch(
        lr_scheduler.StepLR(b, 2, gamma=0.5), b, per_batch=False
    )
    a, b = optimizer(), optimizer()
    seq = run_ours(ours({"exponential": 0.9}, a), a)
    assert seq == run_torch(lr_scheduler.ExponentialLR(b, gamma=0.9), b, per_batch=False)
    assert seq[0] == seq[STEPS - 1] == 0.1 and seq[STEPS] == pytest.approx(0.09)


def test_cosine_spans_all_steps_of_all_epochs():
    a, b = optimizer(), optimizer()
    seq = run_ours(ours({"cosine": {"eta_min": 0.001}}, a), a)
    ref = run_torch(lr_scheduler.CosineAnnealingLR(b, T_max=EPOCHS * STEPS, eta_min=0.001), b, per_batch=True)
    assert seq == ref
    assert seq[0] == 0.1 and seq[-1] < 0.002 and all(x > y for x, y in zip(seq, seq[1:]))


def test_one_cycle_defaults_to_ten_times_lr():
    a, b = optimizer(0.01), optimizer(0.01)
    seq = run_ours(ours("one_cycle", a), a)
    ref = run_torch(
        lr_scheduler.OneCycleLR(b, max_lr=0.1, total_steps=EPOCHS * STEPS, cycle_momentum=False), b, per_batch=True
    )
    assert seq == pytest.approx(ref, abs=1e-12)
    assert 0.099 < max(seq) <= 0.1 and seq[0] == pytest.approx(0.1 / 25)
    assert a.param_groups[0]["momentum"] == 0.0  # momentum is left alone unless cycle_momentum


def test_one_cycle_explicit_options_and_momentum_cycling():
    a, b = optimizer(0.01, momentum=0.9), optimizer(0.01, momentum=0.9)
    seq = run_ours(
        ours({"one_cycle": {"max_lr": 0.5, "pct_start": 0.5, "anneal_strategy": "linear", "cycle_momentum": True}}, a),
        a,
    )
    ref = lr_scheduler.OneCycleLR(b, max_lr=0.5, total_steps=EPOCHS * STEPS, pct_start=0.5, anneal_strategy="linear")
    assert seq == pytest.approx(run_torch(ref, b, per_batch=True), abs=1e-12)


def test_one_cycle_without_momentum_to_cycle_is_a_spec_error():
    opt = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(SpecError, match=r"train\.schedule"):
        ours({"one_cycle": {"cycle_momentum": True}}, opt)


def test_reduce_on_plateau_follows_the_monitored_metric():
    losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5]
    a, b = optimizer(), optimizer()
    seq = run_ours(ours({"reduce_on_plateau": {"patience": 1, "factor": 0.5}}, a), a, val_losses=losses)
    ref = lr_scheduler.ReduceLROnPlateau(b, mode="min", patience=1, factor=0.5)
    assert seq == run_torch(ref, b, per_batch=False, val_losses=losses)
    assert min(seq) < 0.1


def test_plateau_mode_auto_maximises_accuracy():
    sched = ours({"plateau": {"monitor": "val_accuracy"}}, optimizer())
    assert sched.monitor == "val_accuracy" and sched.scheduler.mode == "max"


@pytest.mark.parametrize("raw", ["step", "exponential", "cosine", "one_cycle", {"plateau": {"patience": 0}}])
def test_state_is_json_and_resumes_the_same_sequence(raw):
    a = optimizer()
    full = ours(raw, a)
    half_opt = optimizer()
    half = ours(raw, half_opt)
    for k in range(3):
        for o, s in ((a, full), (half_opt, half)):
            o.step()
            s.step_batch()
            s.step_epoch({"val_loss": 1.0 + k})
    text = json.dumps(half.state_dict(), allow_nan=False)  # standard JSON: no Infinity
    # The loop's order: build optimizer and schedule from the spec, then load both states.
    resumed_opt = optimizer()
    resumed = ours(raw, resumed_opt)
    resumed_opt.load_state_dict(half_opt.state_dict())
    resumed.load_state_dict(json.loads(text))
    for k in range(3, 6):
        for o, s in ((a, full), (resumed_opt, resumed)):
            o.step()
            s.step_batch()
            s.step_epoch({"val_loss": 1.0 + k})
        assert resumed_opt.param_groups[0]["lr"] == a.param_groups[0]["lr"]


def test_no_scheduler_warnings_in_normal_use():
    a = optimizer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_ours(ours("cosine", a), a)


def test_schedule_spec_errors():
    with pytest.raises(SpecError, match="did you mean 'cosine'"):
        TrainSpec.model_validate({"loss": "mse", "schedule": "cosin"})
    with pytest.raises(SpecError, match=r"train\.schedule\.gamma"):
        TrainSpec.model_validate({"loss": "mse", "schedule": {"step": {"gamma": 2}}})


@pytest.mark.parametrize(
    ("raw", "make", "warmup", "cycles"),
    [
        ({"linear": {"warmup_steps": 5}}, "linear", 5, 0.5),
        ({"linear_warmup": {"warmup_ratio": 0.1}}, "linear", math.ceil(0.1 * EPOCHS * STEPS), 0.5),
        ({"cosine_warmup": {"warmup_steps": 3}}, "cosine", 3, 0.5),
        ({"cosine_warmup": {"warmup_ratio": 0.25, "num_cycles": 1.5}}, "cosine", 6, 1.5),
        ("linear", "linear", 0, 0.5),
    ],
)
def test_warmup_schedules_equal_transformers_step_by_step(raw, make, warmup, cycles):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    total = EPOCHS * STEPS
    a, b = optimizer(), optimizer()
    if make == "linear":
        ref = get_linear_schedule_with_warmup(b, warmup, total)
    else:
        ref = get_cosine_schedule_with_warmup(b, warmup, total, num_cycles=cycles)
    seq = run_ours(ours(raw, a), a)
    assert seq == pytest.approx(run_torch(ref, b, per_batch=True), abs=1e-12)
    assert seq[0] == (0.0 if warmup else 0.1) and max(seq) == pytest.approx(0.1)


@pytest.mark.parametrize("raw", ["linear", "cosine_warmup"])
def test_warmup_state_is_json_and_resumes(raw):
    a, b = optimizer(), optimizer()
    full, half = ours({raw: {"warmup_steps": 4}}, a), ours({raw: {"warmup_steps": 4}}, b)
    for _ in range(7):
        for o, s in ((a, full), (b, half)):
            o.step()
            s.step_batch()
    text = json.dumps(half.state_dict(), allow_nan=False)
    c = optimizer()
    resumed = ours({raw: {"warmup_steps": 4}}, c)
    c.load_state_dict(b.state_dict())
    resumed.load_state_dict(json.loads(text))
    for _ in range(7):
        for o, s in ((a, full), (c, resumed)):
            o.step()
            s.step_batch()
        assert c.param_groups[0]["lr"] == a.param_groups[0]["lr"]


def test_warmup_spec_errors():
    with pytest.raises(SpecError, match=r"train\.schedule.*not both"):
        TrainSpec.model_validate({"loss": "mse", "schedule": {"linear": {"warmup_steps": 2, "warmup_ratio": 0.1}}})
    with pytest.raises(SpecError, match=r"train\.schedule\.warmup_ratio"):
        TrainSpec.model_validate({"loss": "mse", "schedule": {"linear": {"warmup_ratio": 1.5}}})
    with pytest.raises(SpecError, match=r"train\.schedule\.warmup_steps.*fewer than the run's 24 optimizer steps"):
        ours({"linear": 24}, optimizer())
