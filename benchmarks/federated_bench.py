"""Federated Fashion-MNIST MLP (docs/federated.md): FedAvg, FedProx and FedAdam on clients split
by Dirichlet(alpha) over the labels, each through ``modelyard.train`` as a federated spec.

    OMP_NUM_THREADS=1 python benchmarks/federated_bench.py --alpha 0.1 --rounds 50
    python benchmarks/federated_bench.py --alpha 0.5 --strategies fedavg
    OMP_NUM_THREADS=1 python benchmarks/federated_bench.py --aggregation-cost 5

``--aggregation-cost R`` times only the server's combine step of one round (``RoundAggregator.combine``
on 10 clients' states of the MLP's 235,146 weights, no training), R interleaved repetitions of: the
plain FedAvg mean, secure aggregation with no dropout, and with 1 and 3 of the 10 clients dropped
(the most the default threshold of 7 recovers from); it prints the median seconds and the ratios to
the plain mean.

The network and client training are examples/fashion_mlp.yaml's (784-256-128-10, Adam lr 1e-3,
batch 128, 10% validation), with one local epoch per round and every client drawn each round;
FedProx and FedAdam take their spec defaults (mu 0.01; server_lr 0.01, beta1 0.9, beta2 0.99,
tau 1e-3). Prints one JSON line per strategy and a Markdown table row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import yaml

import modelyard

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fashion_mlp.yaml"


def spec(
    alpha: float,
    rounds: int,
    clients: int,
    strategy: str,
    secure: bool = False,
    local_epochs: int = 1,
    dropout: float = 0.0,
) -> dict:
    out = yaml.safe_load(EXAMPLE.read_text())
    out["name"] = f"fashion-mlp-fed-{strategy}"
    out["train"]["metrics"] = ["accuracy"]
    out["federated"] = {
        "clients": clients,
        "partition": {"dirichlet": {"alpha": alpha}},
        "rounds": rounds,
        "local_epochs": local_epochs,
        "strategy": strategy,
        "secure_aggregation": secure,
        "dropout": dropout,
    }
    return out


def aggregation_cost(repeats: int, clients: int) -> None:
    from modelyard.federated.rounds import RoundAggregator
    from modelyard.federated.secure_round import SecureServer
    from modelyard.spec import load_spec

    def server(secure: bool) -> RoundAggregator:
        raw = spec(0.1, 1, clients, "fedavg", secure)
        return RoundAggregator(load_spec(raw))

    g = torch.Generator().manual_seed(0)
    shapes = {"0.weight": (256, 784), "0.bias": (256,), "2.weight": (128, 256), "2.bias": (128,)}
    shapes.update({"4.weight": (10, 128), "4.bias": (10,)})
    start = {k: 0.05 * torch.randn(shape, generator=g) for k, shape in shapes.items()}
    states = [{k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in start.items()} for _ in range(clients)]
    sizes = [int(s) for s in torch.randint(200, 6000, (clients,), generator=g)]
    weights = sum(v.numel() for v in start.values())
    plain, secure = server(False), server(True)
    threshold = secure.fed.secure_aggregation.threshold
    cases = {"fedavg mean": (plain, 0), "secure, 0 dropped": (secure, 0)}
    cases.update({f"secure, {k} dropped": (secure, k) for k in (1, clients - threshold)})
    times: dict[str, list[float]] = {name: [] for name in cases}
    served: dict[str, list[float]] = {name: [] for name in cases}
    in_server = [0.0]
    for method in ("relay_keys", "relay_shares", "collect", "unmask"):  # the aggregator's own share of the time
        real = getattr(SecureServer, method)

        def timed(self: SecureServer, *a: object, _real: object = real) -> object:
            t0 = time.perf_counter()
            try:
                return _real(self, *a)  # type: ignore[operator]
            finally:
                in_server[0] += time.perf_counter() - t0

        setattr(SecureServer, method, timed)
    for _ in range(repeats):  # interleaved: every case once per repetition, so load changes hit all alike
        for name, (agg, dropped) in cases.items():
            senders = list(range(dropped, clients))
            in_server[0] = 0.0
            t0 = time.perf_counter()
            agg.combine(start, states[dropped:], sizes[dropped:], 1, senders=senders, drawn=list(range(clients)))
            times[name].append(time.perf_counter() - t0)
            served[name].append(in_server[0])
    base = sorted(times["fedavg mean"])[repeats // 2]
    load = os.getloadavg()
    print(f"{clients} clients, {weights:,} weights, threshold {threshold}, {repeats} repetitions, load {load}")
    print("| round's combine step | median s | vs the plain mean | of which the server's steps, s |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        median = sorted(ts)[repeats // 2]
        print(f"| {name} | {median:.3f} | {median / base:.0f}x | {sorted(served[name])[repeats // 2]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--strategies", default="fedavg,fedprox,fedadam")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--local-epochs", type=int, default=1, help="federated.local_epochs")
    parser.add_argument("--secure-aggregation", action="store_true", help="federated.secure_aggregation: true")
    parser.add_argument("--dropout", type=float, default=0.0, help="federated.dropout (drawn clients that drop)")
    parser.add_argument("--rounds-log", type=Path, default=None, help="append each round's row here (JSON lines)")
    parser.add_argument("--aggregation-cost", type=int, default=0, metavar="R", help="time the combine step only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.aggregation_cost:
        aggregation_cost(args.aggregation_cost, args.clients)
        return
    rows = []
    for strategy in args.strategies.split(","):
        began = time.perf_counter()

        def log_round(rnd: int, row: dict, strategy: str = strategy) -> None:
            if args.rounds_log is not None:
                with args.rounds_log.open("a") as f:
                    f.write(json.dumps({"strategy": strategy, "alpha": args.alpha, "round": rnd, **row}) + "\n")

        with tempfile.TemporaryDirectory() as home:
            result = modelyard.train(
                spec(
                    args.alpha,
                    args.rounds,
                    args.clients,
                    strategy,
                    args.secure_aggregation,
                    args.local_epochs,
                    args.dropout,
                ),
                home=home,
                progress=False,
                on_epoch_end=log_round,
            )
        val = [row.get("val_accuracy", float("nan")) for row in result.history]
        best = max(range(len(val)), key=lambda i: val[i])
        row = {
            "strategy": strategy,
            "alpha": args.alpha,
            "clients": args.clients,
            "secure_aggregation": args.secure_aggregation,
            "dropout": args.dropout,
            "rounds": args.rounds,
            "local_epochs": args.local_epochs,
            "test_accuracy": result.test_metrics["accuracy"],
            "best_val_accuracy": val[best],
            "best_val_round": best + 1,
            "round_s_median": sorted(r["time_s"] for r in result.history)[len(val) // 2],
            "wall_s": time.perf_counter() - began,
            "threads": torch.get_num_threads(),
            "load": os.getloadavg(),
            "cpu": platform.processor() or platform.machine(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| strategy | alpha | clients | rounds | local epochs | test accuracy | best val (round) | median round s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['strategy']} | {r['alpha']} | {r['clients']} | {r['rounds']} | {r['local_epochs']} | "
            f"{100 * r['test_accuracy']:.2f}% | "
            f"{100 * r['best_val_accuracy']:.2f}% ({r['best_val_round']}) | {r['round_s_median']:.2f} |"
        )


if __name__ == "__main__":
    main()
