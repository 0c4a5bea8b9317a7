"""Differentially private training (train.privacy): Poisson sampling, the DP-SGD step against a
plain-torch reference, every step through the accountant, epsilon against Google's dp-accounting,
exact resume, and bad input refused before training."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from modelyard import fast_paths
from modelyard.errors import SpecError
from modelyard.spec import PrivacySpec, TrainSpec
from modelyard.training import fit
from modelyard.training.batches import PoissonBatches
from modelyard.training.losses import LOSSES
from modelyard.training.privacy import ALPHAS, check_private, make_private
from modelyard.training.setup import build_run

pytest.importorskip("opacus")

TIMING = ("time_s", "samples_per_s")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    net.output_activation, net.input_shape = "softmax", (8,)
    return net


def data(n: int = 400) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) + 2 * nn.functional.one_hot(y, 8).float()
    return SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=None, num_classes=3)


def spec(optimizer: str = "sgd", lr: float = 0.5, **privacy: object) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "loss": "cross_entropy",
            "optimizer": optimizer,
            "lr": lr,
            "batch_size": 40,
            "epochs": 3,
            "metrics": ["accuracy"],
            "privacy": {"epsilon": 3.0, "delta": 1e-4, "max_grad_norm": 1.0, **privacy},
        }
    )


def test_poisson_batches_have_binomial_sizes_and_sample_each_row_independently() -> None:
    n, size = 2000, 100
    x, y = torch.arange(n).float().unsqueeze(1), torch.arange(n)
    batches = PoissonBatches(
        x, y, batch_size=size, generator=torch.Generator().manual_seed(0), device=torch.device("cpu")
    )
    assert len(batches) == 20 and batches.sample_rate == pytest.approx(0.05)
    sizes, hits = [], torch.zeros(n)
    for _ in range(50):  # 1000 steps
        for xb, yb in batches:
            assert torch.equal(xb.squeeze(1).long(), yb)
            sizes.append(len(yb))
            hits[yb] += 1
    sizes_t = torch.tensor(sizes, dtype=torch.float64)
    q = batches.sample_rate
    # Binomial(N, q): mean N q = 100, variance N q (1 - q) = 95 (a fixed-size batch has variance 0).
    assert sizes_t.mean().item() == pytest.approx(n * q, rel=0.02)
    assert sizes_t.var().item() == pytest.approx(n * q * (1 - q), rel=0.15)
    # Each row is drawn 1000 q = 50 times on average, with the binomial spread of 1000 steps.
    assert hits.mean().item() == pytest.approx(1000 * q, rel=0.02)
    assert hits.var().item() == pytest.approx(1000 * q * (1 - q), rel=0.2)


def _reference_step(
    net: nn.Module,
    xb: torch.Tensor,
    yb: torch.Tensor,
    *,
    clip: float,
    sigma: float,
    expected: float,
    gen: torch.Generator,
    lr: float,
) -> dict[str, torch.Tensor]:
    """DP-SGD by hand (Abadi et al. 2016): per-sample gradients with torch.func, each clipped to
    ``clip``, summed, Gaussian noise N(0, (sigma clip)^2) added, divided by the expected batch size."""
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss_one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(net, p, (x.unsqueeze(0),))
        return nn.functional.cross_entropy(out, y.unsqueeze(0))

    grads = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, xb, yb)
    norms = torch.sqrt(sum(g.reshape(len(xb), -1).pow(2).sum(1) for g in grads.values()))
    scale = (clip / (norms + 1e-6)).clamp(max=1.0)
    new = {}
    for name, p in params.items():
        summed = torch.einsum("n,n...->...", scale, grads[name])
        noise = torch.normal(0, sigma * clip, size=p.shape, generator=gen)
        new[name] = p - lr * (summed + noise) / expected
    return new


@pytest.mark.parametrize("clipping", ["ghost", "hooks"])
def test_a_dp_step_is_clip_noise_average_as_by_hand(clipping: str) -> None:
    train_spec = spec(clipping=clipping, max_grad_norm=0.5)
    net, prepared = mlp(), data()
    run = build_run(net, prepared, train_spec, seed=0)
    private = run.private
    assert private is not None
    xb, yb = next(iter(run.batches))
    assert len(xb) > 0
    reference_net = mlp()
    gen = torch.Generator().manual_seed(0)
    gen.set_state(private.noise_gen.get_state())
    want = _reference_step(
        reference_net,
        xb,
        yb,
        clip=0.5,
        sigma=private.noise_multiplier,
        expected=prepared.train.x.shape[0] * private.sample_rate,
        gen=gen,
        lr=0.5,
    )
    private.step(net, xb, yb)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), want[name], rtol=1e-4, atol=1e-5)
    private.close()


def test_every_step_goes_through_the_accountant_with_fast_paths_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast_paths.ENV, "1")
    fast_paths.set_enabled(True)
    try:
        from modelyard.training.fast.dense_step import DenseStep
        from modelyard.training.fast.fused_adam import FusedAdamStep

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("a fast path ran under train.privacy")

        monkeypatch.setattr(DenseStep, "__call__", refuse)
        monkeypatch.setattr(FusedAdamStep, "__call__", refuse)
        train_spec = spec(optimizer="adam", lr=0.01)  # the fused Adam kernel's gate is open for plain runs
        result = fit(mlp(), data(), train_spec, seed=0, progress=False)
    finally:
        fast_paths.set_enabled(None)
    steps = 3 * math.ceil(400 / 40)
    assert result.privacy is not None and result.privacy["steps"] == steps == result.privacy["planned_steps"]
    assert result.runtime["step"] == "dp-sgd" and result.runtime["optimizer_step"] == "torch"
    assert set(result.runtime["fast_paths"].values()) == {"off (train.privacy)"}
    assert result.runtime["batching"] == "in-memory-poisson"


def test_epsilon_spent_matches_google_dp_accounting_and_the_target() -> None:
    dp_accounting = pytest.importorskip("dp_accounting")
    result = fit(mlp(), data(), spec(epsilon=3.0, delta=1e-4), seed=0, progress=False)
    p = result.privacy
    assert p is not None
    accountant = dp_accounting.rdp.RdpAccountant(orders=ALPHAS)
    event = dp_accounting.PoissonSampledDpEvent(p["sample_rate"], dp_accounting.GaussianDpEvent(p["noise_multiplier"]))
    accountant.compose(event, p["steps"])
    independent = accountant.get_epsilon(p["delta"])
    assert p["epsilon"] == pytest.approx(independent, rel=0.01)
    assert 3.0 - 0.01 <= p["epsilon"] <= 3.0  # calibrated to spend the requested epsilon at the last step
    # Independent of the orders too: the PLD accountant (tighter) must not find more epsilon spent.
    pld = dp_accounting.pld.PLDAccountant()
    pld.compose(event, p["steps"])
    assert pld.get_epsilon(p["delta"]) <= p["epsilon"] * 1.01


def test_private_training_learns_and_differs_from_the_noiseless_run() -> None:
    private = fit(mlp(), data(), spec(epsilon=8.0), seed=0, progress=False)
    assert private.history[-1]["accuracy"] > 0.8  # the planted signal survives clipping and noise
    tiny = fit(mlp(), data(), spec(epsilon=0.05), seed=0, progress=False)
    assert tiny.privacy is not None and tiny.privacy["noise_multiplier"] > 10 * private.privacy["noise_multiplier"]


class Interrupt(Exception):
    pass


def test_a_resumed_private_run_spends_the_same_epsilon_and_ends_with_the_same_weights(tmp_path) -> None:
    whole_net = mlp()
    whole = fit(whole_net, data(), spec(), seed=0, progress=False, checkpoint_dir=tmp_path / "a")

    def stop(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(mlp(), data(), spec(), seed=0, progress=False, checkpoint_dir=tmp_path / "b", on_epoch_end=stop)
    resumed_net = mlp()
    resumed = fit(resumed_net, data(), spec(), seed=0, progress=False, checkpoint_dir=tmp_path / "b", resume=True)
    assert resumed.privacy == whole.privacy
    for a, b in zip(whole_net.state_dict().values(), resumed_net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    strip = [{k: v for k, v in row.items() if k not in TIMING} for row in resumed.history]
    assert strip == [{k: v for k, v in row.items() if k not in TIMING} for row in whole.history]


def test_no_hooks_are_left_on_the_trained_network() -> None:
    net = mlp()
    fit(net, data(), spec(), seed=0, progress=False)
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())


@pytest.mark.parametrize(
    ("network", "privacy", "match"),
    [
        (lambda: nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)), {}, "BatchNorm1d.*groupnorm"),
        (mlp, {"delta": 1 / 400}, r"train.privacy.delta.*below 1/N = 1/400"),
    ],
)
def test_what_dp_cannot_train_is_refused(network, privacy: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        check_private(PrivacySpec.model_validate({"epsilon": 1.0, "delta": 1e-4, **privacy}), network(), data().train)


def test_make_private_refuses_a_budget_too_small_for_any_noise() -> None:
    batches = PoissonBatches(
        torch.zeros(100, 1), torch.zeros(100), batch_size=100, generator=torch.Generator(), device=torch.device("cpu")
    )
    with pytest.raises(SpecError, match="train.privacy.epsilon"):
        make_private(
            PrivacySpec(epsilon=1e-9, delta=1e-3),
            mlp(),
            torch.optim.SGD(mlp().parameters(), lr=0.1),
            LOSSES.build(TrainSpec.model_validate({"loss": "cross_entropy"}).loss),
            batches,
            epochs=1000,
            device=torch.device("cpu"),
            seed=0,
        )
