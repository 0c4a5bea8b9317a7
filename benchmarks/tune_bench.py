"""Pruning savings of `modelyard tune` on the scikit-learn digits MLP: epochs trained and best validation accuracy.

    python benchmarks/tune_bench.py                                  # 60 trials x 30 epochs x seeds 0,1,2
    python benchmarks/tune_bench.py --trials 30 --seeds 0            # a reduced run

For each seed, the same TPE search (learning rate, hidden width, dropout) runs once without
pruning and once with each pruner (ASHA = Optuna's SuccessiveHalvingPruner, Hyperband), in
alternation so machine load hits them alike. Early stopping is off, so a trial that is not pruned
trains every epoch and the epoch counts measure the pruners alone. Prints, per seed and pruner,
the epochs trained, the share saved against no pruning, the best validation accuracy and its
distance in points; writes benchmarks/results/tune_bench.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import modelyard

HERE = Path(__file__).resolve().parent
PRUNERS = ("none", "asha", "hyperband")
SEARCH = [
    "train.lr=loguniform(1e-4,1e-1)",
    "model.layers.0.units=choice(32,64,128,256)",
    "model.layers.1.rate=uniform(0.0,0.5)",
]


def spec(epochs: int) -> dict[str, Any]:
    return {
        "name": "digits-tune-bench",
        "seed": 0,
        "data": {"source": "digits", "validation": 0.15, "test": 0.2, "preprocess": ["standardize"]},
        "model": {
            "input": [64],
            "layers": [
                {"dense": 128, "activation": "relu", "init": "he"},
                {"dropout": 0.2},
                {"dense": 10, "activation": "softmax", "init": "xavier"},
            ],
        },
        "train": {
            "loss": "cross_entropy",
            "optimizer": "adamw",
            "lr": 0.003,
            "batch_size": 64,
            "epochs": epochs,
            "metrics": ["accuracy"],
            "checkpoint": False,
        },
    }


def one(pruner: str, seed: int, *, trials: int, epochs: int, home: Path) -> dict[str, Any]:
    started = time.perf_counter()
    result = modelyard.tune(
        spec(epochs),
        SEARCH,
        trials=trials,
        metric="val_accuracy",
        sampler="tpe",
        pruner=pruner,
        seed=seed,
        study=f"{pruner}-{seed}",
        home=home,
    )
    return {
        "epochs": result.epochs,
        "best": float(result.best_value),
        "pruned": sum(t["state"] == "pruned" for t in result.trials),
        "s": time.perf_counter() - started,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=60)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated sampler seeds")
    p.add_argument("--out", type=Path, default=HERE / "results" / "tune_bench.md")
    args = p.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for pruner in PRUNERS:
                rows[pruner, seed] = got = one(pruner, seed, trials=args.trials, epochs=args.epochs, home=Path(tmp))
                print(f"seed {seed} {pruner:9s} {got['epochs']:5d} epochs, best val {got['best']:.4f}, {got['s']:.0f}s")
    lines = [
        f"# tune_bench: digits MLP, {args.trials} trials x {args.epochs} epochs, TPE, seeds {args.seeds}",
        "",
        "| seed | pruner | epochs | pruned trials | epochs saved vs none | best val accuracy | vs none (points) | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    saved: dict[str, list[float]] = {p: [] for p in PRUNERS}
    gap: dict[str, list[float]] = {p: [] for p in PRUNERS}
    for seed in seeds:
        base = rows["none", seed]
        for pruner in PRUNERS:
            r = rows[pruner, seed]
            saved[pruner].append(1 - r["epochs"] / base["epochs"])
            gap[pruner].append(100 * (r["best"] - base["best"]))
            lines.append(
                f"| {seed} | {pruner} | {r['epochs']} | {r['pruned']} | {saved[pruner][-1]:.1%} | "
                f"{r['best']:.4f} | {gap[pruner][-1]:+.2f} | {r['s']:.0f} s |"
            )
    lines += ["", "| pruner | epochs saved (mean, min) | best val vs none, points (mean, worst) |", "|---|---|---|"]
    for pruner in PRUNERS[1:]:
        lines.append(
            f"| {pruner} | {statistics.mean(saved[pruner]):.1%}, {min(saved[pruner]):.1%} | "
            f"{statistics.mean(gap[pruner]):+.2f}, {min(gap[pruner]):+.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
