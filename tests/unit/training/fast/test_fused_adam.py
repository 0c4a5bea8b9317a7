"""The direct fused-Adam call (training.fast.fused_adam), bitwise against torch's own ``optimizer.step()``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelyard import fast_paths
from modelyard.training.fast.fused_adam import fast_step


@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (torch.optim.Adam, {}),
        (torch.optim.Adam, {"weight_decay": 0.1}),
        (torch.optim.AdamW, {"weight_decay": 0.05}),
        (torch.optim.Adam, {"maximize": True}),
    ],
)
def test_direct_fused_adam_is_bitwise_torchs_step(cls, options) -> None:
    torch.manual_seed(0)
    ours = [nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(3))]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    reference, optimizer = cls(theirs, lr=0.01, fused=True, **options), cls(ours, lr=0.01, fused=True, **options)
    for p in ours + theirs:
        p.grad = torch.zeros_like(p)
    step = fast_step(optimizer, persistent_grads=True)
    assert step is not None
    for i in range(6):
        for a, b in zip(ours, theirs):
            g = torch.randn_like(a)
            a.grad.copy_(g)
            b.grad.copy_(g)
        if i == 3:  # a schedule changing the learning rate is seen at the next step
            for opt in (reference, optimizer):
                opt.param_groups[0]["lr"] = 0.003
        reference.step()
        step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert all(
        torch.equal(optimizer.state[a]["exp_avg_sq"], reference.state[b]["exp_avg_sq"]) for a, b in zip(ours, theirs)
    )


def test_direct_fused_adam_only_where_it_is_exact() -> None:
    params = [nn.Parameter(torch.randn(3))]
    assert fast_step(torch.optim.Adam(params, fused=True), persistent_grads=False) is None
    assert fast_step(torch.optim.Adam(params, fused=True, amsgrad=True), persistent_grads=True) is None
    assert fast_step(torch.optim.Adam(params, foreach=True), persistent_grads=True) is None
    assert fast_step(torch.optim.SGD(params, lr=0.1, fused=True), persistent_grads=True) is None
    hooked = torch.optim.Adam(params, fused=True)
    hooked.register_step_post_hook(lambda *args: None)
    assert fast_step(hooked, persistent_grads=True) is None


def test_with_fast_paths_off_or_an_untested_torch_optimizer_step_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    params = [torch.nn.Parameter(torch.randn(3, 2))]
    optimizer = torch.optim.Adam(params, fused=True)
    assert fast_step(optimizer, persistent_grads=True) is not None
    with fast_paths.disabled():
        assert fast_step(optimizer, persistent_grads=True) is None
    monkeypatch.setattr(fast_paths, "_installed", lambda package: "2.99.0")
    assert fast_step(optimizer, persistent_grads=True) is None
    assert fast_paths.report(["fused_adam_kernel"]) == {
        "fused_adam_kernel": "off (torch 2.99.0 is outside the tested range >=2.4,<2.14)"
    }
