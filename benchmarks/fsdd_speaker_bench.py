"""FSDD leave-one-speaker-out: test accuracy on each held-out speaker, trained with and without
synthetic speech (flite / espeak-ng digits, data.synthetic_speech) added to the training split.

    python benchmarks/fsdd_speaker_bench.py --epochs 6 --per-class 50   # writes benchmarks/results/fsdd_speaker_bench.md

Every run is examples/fsdd_cnn.yaml (seed 0, its augmentation and schedule) with
``data.test_speaker`` set and ``train.epochs`` from ``--epochs``; the synthetic runs add
``synthetic_speech: {engines: [flite, espeak-ng], per_class: N}`` (the default voices: 5 flite,
7 espeak-ng). Needs the FSDD recordings ($MODELYARD_DATA/fsdd) and the Debian packages flite and
espeak-ng.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import yaml

import modelyard
from modelyard.data.fsdd import SPEAKERS

ROOT = Path(__file__).resolve().parents[1]


def spec(speaker: str, epochs: int, per_class: int | None) -> dict:
    base = yaml.safe_load((ROOT / "examples" / "fsdd_cnn.yaml").read_text())
    base["data"]["test_speaker"] = speaker
    if per_class:
        base["data"]["synthetic_speech"] = {"engines": ["flite", "espeak-ng"], "per_class": per_class}
    base["train"]["epochs"] = epochs
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--speakers", nargs="*", default=list(SPEAKERS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fsdd_speaker_bench.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MODELYARD_HOME", tmp)  # a kept home keeps the rendered clips between runs
        for speaker in args.speakers:
            row = [speaker]
            for per_class in (None, args.per_class):
                start = time.perf_counter()
                result = modelyard.train(spec(speaker, args.epochs, per_class), progress=False)
                acc = result.test_metrics["accuracy"]
                row += [acc, time.perf_counter() - start]
                print(f"{speaker} synthetic={per_class or 0}: {acc:.3f} ({row[-1]:.0f} s)", flush=True)
            rows.append(row)
    load = os.getloadavg()
    lines = [
        "# FSDD leave-one-speaker-out, with and without synthetic speech",
        "",
        f"`python benchmarks/fsdd_speaker_bench.py --epochs {args.epochs} --per-class {args.per_class}`: "
        f"examples/fsdd_cnn.yaml (seed 0) trained for {args.epochs} epochs (the example trains 40) on the four "
        "other speakers (2,000 recordings, 10% of them the validation split), tested on all 500 recordings of the "
        f"held-out speaker; 'synthetic' adds {args.per_class} clips of each digit ({10 * args.per_class} in all) "
        "spoken by 5 flite and 7 espeak-ng voices at drawn rates and pitches, to the training split only.",
        "",
        "| held-out speaker | test accuracy | with synthetic speech | change | time (s) without / with |",
        "|---|---|---|---|---|",
    ]
    for speaker, plain, t0, synth, t1 in rows:
        lines.append(
            f"| {speaker} | {plain:.1%} | {synth:.1%} | {100 * (synth - plain):+.1f} pts | {t0:.0f} / {t1:.0f} |"
        )
    mean_plain = sum(r[1] for r in rows) / len(rows)
    mean_synth = sum(r[3] for r in rows) / len(rows)
    lines += [
        f"| **mean** | **{mean_plain:.1%}** | **{mean_synth:.1%}** | {100 * (mean_synth - mean_plain):+.1f} pts | |",
        "",
        f"CPU: {platform.machine()}, {os.cpu_count()} cores shared with other work; "
        f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
