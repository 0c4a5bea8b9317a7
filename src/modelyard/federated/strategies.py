"""Server-side aggregation: client weights in, next global weights out.

Weights are state dicts of CPU tensors. Floating-point entries are aggregated; integer
buffers (batch norm's ``num_batches_tracked``) take the largest client value.
"""

from __future__ import annotations

import torch

from modelyard.federated.spec import StrategySpec

__all__ = ["Aggregator", "weighted_mean", "proximal_term"]

State = dict[str, torch.Tensor]


def weighted_mean(states: list[State], weights: list[int]) -> State:
    """FedAvg: each entry is the mean of the clients' values weighted by their sample counts."""
    total = float(sum(weights))
    out: State = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            acc = torch.zeros_like(first, dtype=torch.float64)
            for state, w in zip(states, weights):
                acc += state[key].to(torch.float64) * (w / total)
            out[key] = acc.to(first.dtype)
        else:
            out[key] = torch.stack([s[key] for s in states]).amax(dim=0)
    return out


def proximal_term(network: torch.nn.Module, anchor: dict[str, torch.Tensor], mu: float) -> torch.Tensor:
    """FedProx's ``mu/2 * ||w - w_global||^2`` over the trainable parameters."""
    total = torch.zeros((), device=next(network.parameters()).device)
    for name, p in network.named_parameters():
        if p.requires_grad:
            total = total + (p - anchor[name]).pow(2).sum()
    return 0.5 * mu * total


class Aggregator:
    """The strategy's server state across rounds (FedAdam's moments)."""

    def __init__(self, spec: StrategySpec) -> None:
        self.spec = spec
        self.m: State = {}
        self.v: State = {}

    def __call__(self, current: State, states: list[State], weights: list[int]) -> State:
        return self.step(current, weighted_mean(states, weights))

    def step(self, current: State, mean: State) -> State:
        """The next global weights from the clients' mean weights (computed here, or from a secure or noised sum)."""
        if self.spec.type != "fedadam":
            return mean  # FedProx changes the clients' objective, not the server's mean
        return self._adam(current, mean)

    def _adam(self, current: State, mean: State) -> State:
        # Reddi et al. 2021, Algorithm 2 (FedAdam): delta = mean(x_i) - x, m = b1 m + (1-b1) delta,
        # v = b2 v + (1-b2) delta^2, x += eta m / (sqrt(v) + tau); m and v start at zero, no bias correction.
        s = self.spec
        b1, b2, eta, tau = float(s.beta1), float(s.beta2), float(s.server_lr), float(s.tau)
        out: State = {}
        for key, x in current.items():
            if not x.is_floating_point():
                out[key] = mean[key]
                continue
            delta = mean[key].to(torch.float64) - x.to(torch.float64)
            m = self.m.get(key, torch.zeros_like(delta)) * b1 + (1 - b1) * delta
            v = self.v.get(key, torch.zeros_like(delta)) * b2 + (1 - b2) * delta * delta
            self.m[key], self.v[key] = m, v
            out[key] = (x.to(torch.float64) + eta * m / (v.sqrt() + tau)).to(x.dtype)
        return out
