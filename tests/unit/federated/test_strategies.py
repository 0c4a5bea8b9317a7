"""Aggregation against independent references: FedAvg as a NumPy weighted mean, FedAdam as Reddi et
al.'s update written out in NumPy, FedProx's client training as plain-torch SGD on loss + mu/2 ||w - w0||^2."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from modelyard.data import prepare
from modelyard.federated.simulation import client_splits, run_rounds
from modelyard.federated.spec import StrategySpec
from modelyard.federated.strategies import Aggregator, weighted_mean
from modelyard.nn import build_model
from modelyard.spec import load_spec
from tests.support.compression import digits_spec


def states(seed: int, count: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {"w": torch.randn(3, 4, generator=g), "b": torch.randn(3, generator=g), "n": torch.tensor(i)}
        for i in range(count)
    ]


def test_fedavg_is_the_sample_weighted_mean() -> None:
    clients, sizes = states(0, 3), [10, 30, 60]
    mean = weighted_mean(clients, sizes)
    for key in ("w", "b"):
        ref = sum(np.asarray(c[key], dtype=np.float64) * n for c, n in zip(clients, sizes)) / sum(sizes)
        np.testing.assert_allclose(mean[key].numpy(), ref, rtol=1e-6, atol=1e-7)
    assert int(mean["n"]) == 2  # integer buffers (num_batches_tracked): the largest
    assert Aggregator(StrategySpec(type="fedprox", mu=0.1))(clients[0], clients, sizes)["w"].equal(mean["w"])


def test_fedadam_follows_reddi_et_al_algorithm_2_over_rounds() -> None:
    spec = StrategySpec.model_validate({"fedadam": {"server_lr": 0.1, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3}})
    aggregate = Aggregator(spec)
    x = {k: v.clone() for k, v in states(1, 1)[0].items()}
    ref_x = np.asarray(x["w"], dtype=np.float64)
    m = np.zeros_like(ref_x)
    v = np.zeros_like(ref_x)
    for rnd in range(3):
        clients, sizes = states(10 + rnd, 2), [5, 15]
        x = aggregate(x, clients, sizes)
        delta = (
            np.asarray(clients[0]["w"], np.float64) * 5 + np.asarray(clients[1]["w"], np.float64) * 15
        ) / 20 - ref_x
        m = 0.9 * m + 0.1 * delta
        v = 0.99 * v + 0.01 * delta**2
        ref_x = ref_x + 0.1 * m / (np.sqrt(v) + 1e-3)
        np.testing.assert_allclose(x["w"].numpy(), ref_x, rtol=1e-5, atol=1e-6)


def test_a_fedprox_round_equals_plain_torch_sgd_on_the_proximal_objective() -> None:
    raw = digits_spec(epochs=1, hidden=(8,))
    raw["data"].update(validation=0.0, test=0.0)
    raw["model"]["layers"][-1] = {"dense": 10}  # logits: the reference takes F.cross_entropy
    raw["train"].update(optimizer="sgd", lr=0.5, batch_size="full", precision="fp32", metrics=[])
    raw["federated"] = {"clients": 3, "rounds": 1, "local_epochs": 3, "strategy": {"fedprox": {"mu": 0.5}}}
    spec = load_spec(raw)
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed)
    torch.manual_seed(0)
    network = build_model(spec.model, loss=spec.train.loss.type)
    start = copy.deepcopy(network)
    rows: list[dict] = []
    run_rounds(spec, network, prepared, lambda rnd, row: rows.append(row))
    expected: dict[str, torch.Tensor] = {}
    splits = client_splits(spec, prepared)
    total = sum(len(s) for s in splits)
    for split in splits:
        ref = copy.deepcopy(start)
        anchor = {n: p.detach().clone() for n, p in ref.named_parameters()}
        for _ in range(3):  # full batch: one step per local epoch
            ref.zero_grad()
            prox = sum(((p - anchor[n]) ** 2).sum() for n, p in ref.named_parameters())
            (F.cross_entropy(ref(split.x), split.y) + 0.25 * prox).backward()
            with torch.no_grad():
                for p in ref.parameters():
                    p -= 0.5 * p.grad
        for n, p in ref.named_parameters():
            expected[n] = expected.get(n, 0) + p.detach() * (len(split) / total)
    got = dict(network.named_parameters())
    for n, value in expected.items():
        torch.testing.assert_close(got[n].detach(), value, rtol=1e-4, atol=1e-5)
    assert rows[0]["epoch"] == 1 and rows[0]["clients"] == 3 and rows[0]["samples"] == total
