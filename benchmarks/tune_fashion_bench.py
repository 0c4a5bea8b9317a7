"""A Fashion-MNIST MLP search with `modelyard tune` against the hand-set examples/fashion_mlp.yaml (88.6%).

    python benchmarks/tune_fashion_bench.py                    # 16 trials x up to 20 epochs, ASHA, seed 0
    python benchmarks/tune_fashion_bench.py --trials 4 --epochs 3 --out /tmp/t.md   # a reduced run

The searched spec is the example's 784-H1-H2-10 ReLU MLP (Adam, batch 128, ``scale``, 10%
validation) with a dropout layer after each hidden layer, trained for up to ``--epochs`` epochs.
TPE searches the learning rate, both widths, both dropout rates and the batch size on
``val_accuracy``; ASHA prunes. The study registers its best trial, which is then evaluated on the
10,000 test images (``modelyard.evaluate``: the test split is never seen by the search), beside
the hand-set example trained in the same run and evaluated the same way. Writes
benchmarks/results/tune_fashion_bench.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

import modelyard

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "fashion_mlp.yaml"
SEARCH = [
    "train.lr=loguniform(2e-4,3e-3)",
    "model.layers.0.units=choice(256,512,1024)",
    "model.layers.1.rate=uniform(0.0,0.5)",
    "model.layers.2.units=choice(128,256,512)",
    "model.layers.3.rate=uniform(0.0,0.5)",
    "train.batch_size=choice(64,128,256)",
]


def searched_spec(epochs: int) -> dict[str, Any]:
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["name"] = "fashion-mlp-tuned"
    spec["model"]["layers"] = [
        {"dense": 256, "activation": "relu"},
        {"dropout": 0.2},
        {"dense": 128, "activation": "relu"},
        {"dropout": 0.2},
        {"dense": 10, "activation": "softmax"},
    ]
    spec["train"]["epochs"] = epochs
    spec["train"]["metrics"] = ["accuracy"]
    return spec


def cpu() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "tune_fashion_bench.md")
    args = p.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as home:
        began = time.perf_counter()
        hand = modelyard.train(EXAMPLE, home=home, progress=False)
        hand_s = time.perf_counter() - began
        hand_test = modelyard.evaluate(hand.model_ref, home=home)
        began = time.perf_counter()
        result = modelyard.tune(
            searched_spec(args.epochs),
            SEARCH,
            trials=args.trials,
            metric="val_accuracy",
            sampler="tpe",
            pruner="asha",
            seed=args.seed,
            home=home,
        )
        tune_s = time.perf_counter() - began
        best_test = modelyard.evaluate(result.model_ref, home=home)
    epochs = sum(int(t["epochs"] or 0) for t in result.trials)
    pruned = sum(t["state"] == "pruned" for t in result.trials)
    lines = [
        f"# tune_fashion_bench: Fashion-MNIST MLP, {args.trials} trials x up to {args.epochs} epochs, TPE + ASHA, "
        f"seed {args.seed}",
        "",
        "| model | val accuracy | test accuracy | time |",
        "|---|---|---|---|",
        f"| hand-set examples/fashion_mlp.yaml ({hand.model_ref}) | {hand.history[-1].get('val_accuracy', float('nan')):.4f} "
        f"| {hand_test['accuracy']:.4f} | {hand_s:.0f} s |",
        f"| best trial {result.best_trial} ({result.model_ref}) | {result.best_value:.4f} | {best_test['accuracy']:.4f} "
        f"| {tune_s:.0f} s for the search |",
        "",
        f"Best parameters: `{result.best_params}`. {len(result.trials)} trials, {pruned} pruned, {epochs} epochs "
        f"trained of {args.trials * args.epochs} without pruning.",
        "",
        f"CPU: {cpu()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end. The test split "
        "is used only by `modelyard.evaluate` after the search.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
