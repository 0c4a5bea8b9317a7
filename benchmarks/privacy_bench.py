"""Differentially private Fashion-MNIST MLP (docs/privacy.md): accuracy at epsilon 3, delta 1e-5,
and Opacus's ghost clipping against its per-sample gradient hooks (time per epoch, peak memory).

    python benchmarks/privacy_bench.py                      # the full run (ghost clipping)
    python benchmarks/privacy_bench.py --compare --epochs 1 # ghost vs hooks, each in its own process

Each mode runs in a fresh process so that its peak resident memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile


def spec(epochs: int, clipping: str) -> dict:
    return {
        "name": "fashion-mlp-dp",
        "seed": 0,
        "data": {"source": "fashion-mnist", "validation": 0.0, "preprocess": ["scale"]},
        "model": {
            "input": [784],
            "layers": [{"dense": 512, "activation": "relu"}, {"dense": 10, "activation": "softmax"}],
        },
        "train": {
            "loss": "cross_entropy",
            "optimizer": {"sgd": {"momentum": 0.9}},
            "lr": 0.5,
            "batch_size": 1024,
            "epochs": epochs,
            "metrics": ["accuracy"],
            "privacy": {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 1.0, "clipping": clipping},
        },
    }


def one(epochs: int, clipping: str) -> dict:
    import modelyard
    from modelyard.store import ModelStore

    with tempfile.TemporaryDirectory() as home:
        result = modelyard.train(spec(epochs, clipping), home=home, progress=False)
        privacy = ModelStore(home).get(result.model_ref).metrics["privacy"]
    epoch_s = [row["time_s"] for row in result.history]
    return {
        "clipping": clipping,
        "epochs": epochs,
        "test_accuracy": result.test_metrics["accuracy"],
        "epoch_s": sum(epoch_s) / len(epoch_s),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "epsilon": privacy["epsilon"],
        "noise_multiplier": privacy["noise_multiplier"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--clipping", default="ghost", choices=["ghost", "hooks"])
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if not args.compare:
        print(json.dumps(one(args.epochs, args.clipping)))
        return
    rows = []
    for clipping in ("ghost", "hooks"):
        out = subprocess.run(
            [sys.executable, __file__, "--epochs", str(args.epochs), "--clipping", clipping],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    ghost, hooks = rows
    print(
        f"hooks / ghost: {hooks['epoch_s'] / ghost['epoch_s']:.2f}x time per epoch, "
        f"{hooks['peak_rss_mib'] / ghost['peak_rss_mib']:.2f}x peak memory"
    )


if __name__ == "__main__":
    main()
