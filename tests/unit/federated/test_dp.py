"""Client-level DP (DP-FedAvg): clipping against a torch reference, the noise's scale, epsilon
against Google's dp-accounting, calibration to a target, and a run that records what it spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import modelyard
from modelyard.cli.models import privacy_line
from modelyard.federated.dp import ClientDP
from modelyard.federated.rounds import _combine
from modelyard.federated.spec import FederatedSpec
from modelyard.federated.updates import Layout, clip
from modelyard.store import ModelStore, RunStore
from modelyard.training.privacy import ALPHAS
from tests.unit.federated.test_simulation import federated_spec


def fed(**dp: Any) -> FederatedSpec:
    return FederatedSpec.model_validate(
        {"clients": 20, "clients_per_round": 5, "rounds": 40, "dp": {"delta": 1e-3, **dp}}
    )


def test_clip_scales_long_updates_to_the_norm_and_leaves_short_ones() -> None:
    g = torch.Generator().manual_seed(0)
    long = torch.randn(1000, generator=g, dtype=torch.float64) * 3
    reference = long * (1.0 / torch.linalg.vector_norm(long))
    np.testing.assert_allclose(clip(long.numpy(), 1.0), reference.numpy(), rtol=1e-12)
    assert np.linalg.norm(clip(long.numpy(), 1.0)) == pytest.approx(1.0, rel=1e-12)
    short = (long / 1000).numpy()
    assert clip(short, 1.0) is short


def test_the_noise_on_the_mean_has_std_z_times_clip_over_m() -> None:
    dp = ClientDP(fed(noise_multiplier=1.3, max_update_norm=0.5), seed=0)
    total = np.full(200_000, 2.0)
    noised = dp.noised_mean(total, 4)
    assert noised.mean() == pytest.approx(0.5, abs=1e-3)  # the sum / m
    assert noised.std() == pytest.approx(1.3 * 0.5 / 4, rel=0.01)
    assert dp.rounds == 1


def test_epsilon_matches_google_dp_accounting() -> None:
    dp_accounting = pytest.importorskip("dp_accounting")
    dp = ClientDP(fed(noise_multiplier=1.1), seed=0)
    for _ in range(40):
        dp.noised_mean(np.zeros(3), 5)
    report = dp.report()
    accountant = dp_accounting.rdp.RdpAccountant(orders=ALPHAS)
    accountant.compose(dp_accounting.PoissonSampledDpEvent(0.25, dp_accounting.GaussianDpEvent(1.1)), 40)
    assert report["sample_rate"] == 0.25 and report["rounds"] == 40 and report["level"] == "client"
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(1e-3), rel=0.01)


def test_a_target_epsilon_is_spent_at_the_last_round() -> None:
    dp = ClientDP(fed(epsilon=4.0), seed=0)
    for _ in range(40):
        dp.noised_mean(np.zeros(3), 5)
    assert 4.0 - 0.01 <= dp.epsilon() <= 4.0
    assert ClientDP(fed(epsilon=1.0), seed=0).noise_multiplier > dp.noise_multiplier


def test_the_round_averages_clipped_updates_with_equal_weight() -> None:
    g = torch.Generator().manual_seed(1)
    start = {"w": torch.randn(6, 4, generator=g), "b": torch.randn(4, generator=g), "n": torch.tensor(3)}
    states = [{k: v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v + 1 for k, v in start.items()}]
    states += [
        {k: v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in start.items()}
    ]
    spec = fed(noise_multiplier=1e-12, max_update_norm=1.0)
    out = _combine(spec, start, dict(enumerate(states)), [100, 1], ClientDP(spec, seed=0), rnd=1)
    assert out is not None
    # Reference in torch: each client's whole update (w and b together) clipped to norm 1, then the plain mean.
    deltas = [torch.cat([(s[k] - start[k]).reshape(-1).double() for k in ("w", "b")]) for s in states]
    clipped = [d * min(1.0, 1.0 / float(torch.linalg.vector_norm(d))) for d in deltas]
    mean = (clipped[0] + clipped[1]) / 2  # equal weights although the sizes are 100 and 1
    got = torch.cat([(out[k] - start[k]).reshape(-1).double() for k in ("w", "b")])
    torch.testing.assert_close(got, mean, rtol=0, atol=1e-6)
    assert int(out["n"]) == 3  # integer buffers stay at the global value
    assert Layout.of(start).size == 28


def test_a_dp_run_records_epsilon_in_the_run_the_version_and_its_lineage(home: Path) -> None:
    result = modelyard.train(
        federated_spec(dp={"noise_multiplier": 0.8, "delta": 1e-3, "max_update_norm": 2.0}), home=home, progress=False
    )
    run = RunStore(home).get(result.run_id)
    spent = [row["epsilon"] for row in run.history]
    assert spent == sorted(spent) and spent[0] > 0
    privacy = run.summary["privacy"]
    assert privacy["epsilon"] == pytest.approx(spent[-1]) and privacy["rounds"] == 3 and privacy["level"] == "client"
    version = ModelStore(home).get(result.model_ref)
    assert version.metrics["privacy"] == privacy
    lineage = version.lineage["federated"]
    assert lineage["epsilon"] == pytest.approx(spent[-1]) and lineage["delta"] == 1e-3
    assert lineage["dp"] == {"max_update_norm": 2.0, "noise_multiplier": 0.8, "delta": 1e-3}
    assert lineage["rounds"] == 3 and lineage["clients"] == 4 and lineage["strategy"] == {"type": "fedavg"}
    line = privacy_line(privacy)  # `modelyard models show`
    assert (
        line.startswith("privacy: client-level (") and "max_update_norm 2, 3 rounds at client sampling rate 1" in line
    )
