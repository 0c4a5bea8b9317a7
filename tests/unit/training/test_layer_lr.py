"""train.layer_lr_decay: one learning rate per encoder level, following the schedule and exact resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from modelyard.errors import SpecError
from modelyard.training import fit, load_checkpoint
from modelyard.training.setup import build_run
from tests.support.sequences import build, padded_ids
from tests.unit.training.test_loop import data, spec

LR, DECAY, BLOCKS = 0.01, 0.5, 3
LAYERS = [
    {"embedding": 40, "dim": 16, "pad": 0},
    {"position_embedding": "learned"},
    {"transformer": BLOCKS, "heads": 2, "mlp": 32, "dropout": 0.1},
    {"token_pool": "mean"},
    {"dense": 3},
]


def expected_lr(name: str) -> float:
    """BEiT's rule written out by parameter name: the head lr, block i lr·d^(L−i), embeddings lr·d^(L+1)."""
    if name.startswith(("layers.0.", "layers.1.")):
        return LR * DECAY ** (BLOCKS + 1)
    block = re.match(r"layers\.2\.blocks\.(\d+)\.", name)
    if block:
        return LR * DECAY ** (BLOCKS - int(block.group(1)))
    assert name.startswith("layers.4."), name
    return LR


def tokens(n: int = 24) -> object:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 9, (n,), generator=g).tolist()
    return data(padded_ids(lengths, 8, 40, seed=1), torch.randint(0, 3, (n,), generator=g), num_classes=3)


def train_spec(**kw: object):
    return spec(
        loss="cross_entropy",
        optimizer="adamw",
        lr=LR,
        batch_size=8,
        epochs=3,
        layer_lr_decay=DECAY,
        schedule={"linear": None, "warmup_steps": 2},
        **kw,
    )


def lr_of(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_every_parameter_gets_its_levels_lr_and_the_schedule_scales_them_all() -> None:
    torch.manual_seed(0)
    net = build(LAYERS, [8])
    run = build_run(net, tokens(), train_spec(checkpoint=False), seed=0)
    assert run.optimizer.param_groups[0]["lr"] == 0.0  # the head's group first; linear warmup starts at 0
    names = dict(net.named_parameters())
    initial = {id(p): g["initial_lr"] for g in run.optimizer.param_groups for p in g["params"]}
    assert len(initial) == len(names)
    for name, p in names.items():
        assert initial[id(p)] == pytest.approx(expected_lr(name), rel=1e-12), name
    assert len(run.optimizer.param_groups) == BLOCKS + 2
    total = 3 * 3  # 24 samples / 8 per batch, 3 epochs
    for step in range(1, total + 1):
        run.optimizer.step()  # no gradients: moves nothing, but torch wants a step before the schedule's
        run.schedule.step_batch()
        factor = step / 2 if step < 2 else (total - step) / (total - 2)
        for name, p in names.items():
            assert lr_of(run.optimizer)[id(p)] == pytest.approx(expected_lr(name) * factor, rel=1e-9, abs=1e-15)


def test_pretrained_encoder_levels_and_frozen_parts_get_no_group(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tests.support.pretrained import VOCAB, tiny_bert

    tiny_bert(tmp_path, blocks=2)
    net = build([{"pretrained": str(tmp_path), "freeze": "blocks[0]"}, {"token_pool": "mean"}, {"dense": 3}], [8])
    x = padded_ids([8, 3, 5, 2], 8, VOCAB, seed=0)
    run = build_run(net, data(x, torch.tensor([0, 1, 2, 0]), num_classes=3), train_spec(checkpoint=False), seed=0)
    got = {name: lr_of(run.optimizer).get(id(p)) for name, p in net.named_parameters()}
    for name, lr in got.items():
        if name.startswith("layers.0.encoder.blocks.0."):
            assert lr is None, name  # frozen
        elif name.startswith("layers.0.encoder.blocks.1."):
            assert run.optimizer.param_groups[1]["initial_lr"] == pytest.approx(LR * DECAY)
        elif name.startswith("layers.0."):  # embeddings, positions, their layer norm
            assert run.optimizer.param_groups[2]["params"][0] is net.layers[0].embedding.weight
            assert run.optimizer.param_groups[2]["initial_lr"] == pytest.approx(LR * DECAY**3)
        else:
            assert run.optimizer.param_groups[0]["initial_lr"] == LR, name


def test_one_cycle_peaks_each_group_at_its_share() -> None:
    net = build(LAYERS, [8])
    run = build_run(net, tokens(), train_spec(checkpoint=False).model_copy(update={"schedule": None}), seed=0)
    from modelyard.training.schedules import SCHEDULES
    from tests.unit.training.test_loop import spec as plain

    schedule = SCHEDULES.build(
        plain(loss="mse", schedule={"one_cycle": 0.1}).schedule, run.optimizer, epochs=1, steps_per_epoch=10
    )
    peaks = [g["max_lr"] for g in run.optimizer.param_groups]
    assert peaks == pytest.approx([0.1 * DECAY**k for k in range(BLOCKS + 2)])
    assert schedule.per == "batch"


def test_exact_resume_keeps_the_per_group_rates(tmp_path: Path) -> None:
    class Interrupt(Exception):
        pass

    def stop(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise Interrupt

    torch.manual_seed(0)
    straight = build(LAYERS, [8])
    torch.manual_seed(0)
    resumed = build(LAYERS, [8])
    expected = fit(straight, tokens(), train_spec(), seed=3, checkpoint_dir=tmp_path / "a", progress=False)
    with pytest.raises(Interrupt):
        fit(resumed, tokens(), train_spec(), seed=3, checkpoint_dir=tmp_path / "b", on_epoch_end=stop, progress=False)
    middle = load_checkpoint(tmp_path / "b").optimizer["param_groups"]
    assert [g["initial_lr"] for g in middle] == pytest.approx([LR * DECAY**k for k in range(BLOCKS + 2)])
    torch.manual_seed(12345)
    fresh = build(LAYERS, [8])
    result = fit(fresh, tokens(), train_spec(), seed=3, checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    for (name, a), b in zip(straight.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert result.history[-1]["lr"] == expected.history[-1]["lr"]
    want = load_checkpoint(tmp_path / "a").optimizer["param_groups"]
    got = load_checkpoint(tmp_path / "b").optimizer["param_groups"]
    assert [(g["lr"], g["initial_lr"]) for g in got] == [(g["lr"], g["initial_lr"]) for g in want]


def test_a_network_without_encoder_blocks_is_refused_in_one_line() -> None:
    net = build([{"embedding": 40, "dim": 16, "pad": 0}, {"token_pool": "mean"}, {"dense": 3}], [8])
    with pytest.raises(SpecError, match=r"`train.layer_lr_decay`: expected a network with transformer encoder"):
        build_run(net, tokens(), train_spec(checkpoint=False), seed=0)
    with pytest.raises(ValueError, match="layer_lr_decay"):
        spec(loss="mse", layer_lr_decay=1.5)
