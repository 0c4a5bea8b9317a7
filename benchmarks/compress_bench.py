"""Compression on the Fashion-MNIST MLP: before/after tables and the int8 speed-up as served.

    python benchmarks/compress_bench.py                  # trains examples/fashion_mlp.yaml first
    python benchmarks/compress_bench.py --model fashion-mlp:1 --home ~/.modelyard

Runs `modelyard.compress` four ways (int8, 50% pruned + 2 epochs fine-tuning, 50% structured
+ 3 epochs, distillation into 784-64-10 next to the same student trained alone) and prints
each before/after table. Then the claim users get: parent and int8 version each behind the
backend `modelyard serve` picks (`auto`), batch 1, one thread, calls alternating round by
round, median. Writes benchmarks/results/compress_bench.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import modelyard
from modelyard.compression import compress
from modelyard.compression.measure import one_thread, time_calls
from modelyard.predict import Predictor
from modelyard.serving.backends import select_backend

HERE = Path(__file__).resolve().parent
STUDENT = {
    "model": {"input": [784], "layers": [{"dense": 64, "activation": "relu"}, {"dense": 10, "activation": "softmax"}]}
}


def served_speedup(parent_ref: str, child_ref: str, home: Path, *, rounds: int) -> dict[str, object]:
    """Batch-1 latency of parent and child, each on the backend `auto` picks, one thread."""
    parent, child = Predictor.load(parent_ref, home=home), Predictor.load(child_ref, home=home)
    x = parent.preprocess(np.random.default_rng(0).uniform(0, 255, size=(1, 784)))
    with one_thread():
        chosen = {"parent": select_backend(parent, "auto"), "int8": select_backend(child, "auto")}
        ms = time_calls(
            {name: (lambda b=c.backend: b.predict_array(x)) for name, c in chosen.items()},
            rounds=rounds,
            per_round=20,
            warmup=200,
        )
    return {"ms": ms, "backends": {n: c.info["name"] for n, c in chosen.items()}, "speedup": ms["parent"] / ms["int8"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default=None, help="a registered Fashion-MNIST MLP (default: train examples/fashion_mlp.yaml)"
    )
    p.add_argument("--home", type=Path, default=None)
    p.add_argument("--rounds", type=int, default=600, help="alternating timing rounds of 20 calls each")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="compress-bench-"))
    ref = (
        args.model
        or modelyard.train(HERE.parent / "examples" / "fashion_mlp.yaml", home=home, progress=False).model_ref
    )
    results = {
        "int8 (dynamic)": compress(ref, quantize="int8", home=home, rounds=40),
        "50% pruned, 2 epochs fine-tuning": compress(ref, prune=0.5, finetune=2, home=home),
        "50% structured, 3 epochs fine-tuning": compress(ref, prune=0.5, structured=True, finetune=3, home=home),
        "distilled into 784-64-10": compress(ref, distill=STUDENT, home=home),
    }
    lines = [f"Parent: {ref} (examples/fashion_mlp.yaml). Latencies: median ms, one thread.", ""]
    for title, result in results.items():
        lines += [f"### {title}: {result.model_ref}", "", result.table(), "", result.served(), ""]
    served = served_speedup(ref, results["int8 (dynamic)"].model_ref, home, rounds=args.rounds)
    lines += [
        "### int8 as served, batch 1",
        "",
        f"parent on {served['backends']['parent']}: {served['ms']['parent']:.4f} ms; "
        f"int8 on {served['backends']['int8']}: {served['ms']['int8']:.4f} ms; "
        f"speed-up **{served['speedup']:.2f}x** (bar: 1.5x)",
        "",
    ]
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compress_bench.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
