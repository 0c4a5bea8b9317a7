"""Federated Fashion-MNIST MLP (docs/federated.md): FedAvg, FedProx and FedAdam on clients split
by Dirichlet(alpha) over the labels, each through ``modelyard.train`` as a federated spec.

    OMP_NUM_THREADS=1 python benchmarks/federated_bench.py --alpha 0.1 --rounds 50
    python benchmarks/federated_bench.py --alpha 0.5 --strategies fedavg

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


def spec(alpha: float, rounds: int, clients: int, strategy: str, secure: bool = False, local_epochs: int = 1) -> dict:
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
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--strategies", default="fedavg,fedprox,fedadam")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--local-epochs", type=int, default=1, help="federated.local_epochs")
    parser.add_argument("--secure-aggregation", action="store_true", help="federated.secure_aggregation: true")
    parser.add_argument("--rounds-log", type=Path, default=None, help="append each round's row here (JSON lines)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for strategy in args.strategies.split(","):
        began = time.perf_counter()

        def log_round(rnd: int, row: dict, strategy: str = strategy) -> None:
            if args.rounds_log is not None:
                with args.rounds_log.open("a") as f:
                    f.write(json.dumps({"strategy": strategy, "alpha": args.alpha, "round": rnd, **row}) + "\n")

        with tempfile.TemporaryDirectory() as home:
            result = modelyard.train(
                spec(args.alpha, args.rounds, args.clients, strategy, args.secure_aggregation, args.local_epochs),
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
