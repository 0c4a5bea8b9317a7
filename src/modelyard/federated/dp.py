"""Client-level differential privacy for federated rounds (DP-FedAvg, McMahan et al. 2018).

"Learning Differentially Private Recurrent Language Models" (ICLR 2018), Algorithm 1: each
drawn client's update is clipped to L2 norm S (``max_update_norm``), the server averages the
``m`` clipped updates with equal weight (a sample-weighted mean would let one client move the
average by more than S/m) and adds N(0, (z S / m)^2) per coordinate. One round is one
subsampled Gaussian mechanism with noise multiplier z at sampling rate q = m / clients; the
rounds compose under Opacus's RDP accountant (the one ``train.privacy`` uses), so the reported
epsilon is for client-level adjacency: adding or removing all of one client's data.

The RDP bound is the Poisson-subsampled Gaussian's; the rounds draw exactly m clients without
replacement at rate m/n, the usual approximation (TensorFlow Federated's DP-FedAvg accounts the
same way). The noise comes from a seeded generator, as train.privacy's does (not secure_mode).
"""

from __future__ import annotations

import warnings
from importlib import metadata
from typing import Any

import numpy as np

from modelyard.errors import optional_dependency
from modelyard.federated.spec import FederatedSpec

__all__ = ["ClientDP"]

MECHANISM = "DP-FedAvg: clipped client updates, Gaussian noise on their mean (McMahan et al. 2018)"


def _accountant_class() -> Any:
    with optional_dependency("privacy", "client-level differential privacy (federated.dp)"):
        from opacus.accountants import RDPAccountant
    return RDPAccountant


class ClientDP:
    """The clipping, the noise and the accountant of one federated run."""

    def __init__(self, fed: FederatedSpec, *, seed: int) -> None:
        assert fed.dp is not None
        RDPAccountant = _accountant_class()  # first: a missing extra is named for federated.dp
        from modelyard.training.privacy import ACCOUNTANT, ALPHAS, calibrated_noise

        self.spec = fed.dp
        self.sample_rate = fed.per_round / fed.clients
        self.planned_rounds = fed.rounds
        self.alphas = ALPHAS
        self.accountant_name = ACCOUNTANT
        if fed.dp.noise_multiplier is not None:
            self.noise_multiplier = float(fed.dp.noise_multiplier)
        else:
            assert fed.dp.epsilon is not None
            self.noise_multiplier = calibrated_noise(
                fed.dp.epsilon,
                fed.dp.delta,
                sample_rate=self.sample_rate,
                steps=fed.rounds,
                field="federated.dp.epsilon",
                unit="rounds",
                fewer="rounds",
            )
        self.accountant = RDPAccountant()
        self.rng = np.random.default_rng([seed, 2])  # the noise stream, apart from the partition and client draw

    def clip(self, update: np.ndarray) -> np.ndarray:
        from modelyard.federated.updates import clip

        return clip(update, self.spec.max_update_norm)

    def noised_mean(self, total: np.ndarray, m: int) -> np.ndarray:
        """The mean of ``m`` clipped updates from their sum, plus the round's Gaussian noise; one accountant step."""
        std = self.noise_multiplier * self.spec.max_update_norm / m
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return total / m + self.rng.normal(0.0, std, size=total.shape)

    @property
    def rounds(self) -> int:
        return sum(int(n) for _, _, n in self.accountant.history)

    def epsilon(self) -> float:
        if not self.accountant.history:
            return 0.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
            return float(self.accountant.get_epsilon(delta=self.spec.delta, alphas=self.alphas))

    def report(self) -> dict[str, Any]:
        """The privacy facts recorded with the run and the model version (``privacy`` key)."""
        return {
            "level": "client",
            "epsilon": self.epsilon(),
            "delta": self.spec.delta,
            "target_epsilon": self.spec.epsilon,
            "noise_multiplier": self.noise_multiplier,
            "max_update_norm": self.spec.max_update_norm,
            "sample_rate": self.sample_rate,
            "rounds": self.rounds,
            "planned_rounds": self.planned_rounds,
            "sampling": "fixed-size without replacement, accounted as Poisson at rate clients_per_round/clients",
            "accountant": self.accountant_name,
            "mechanism": f"{MECHANISM} (Opacus {metadata.version('opacus')} accountant)",
        }
