"""How long the CLI's everyday commands take, as a person runs them (a fresh process each time).

    python benchmarks/cli_bench.py                                  # this checkout
    python benchmarks/cli_bench.py --src OLD/src --src NEW/src      # two builds side by side

Trains examples/digits_mlp.yaml (2 epochs) into a throwaway store once, then times each command
in a fresh `python -m modelyard` process, the builds alternating round by round (the machine is
shared and noisy, so compare the builds within one run). Prints the median wall time per command
and, with two builds, the ratio. Each `--src` is put first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "digits_mlp.yaml"

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "models": ["models"],
    "models show": ["models", "show", "digits-mlp:1"],
    "runs": ["runs"],
    "jobs --help": ["jobs", "--help"],
    "predict (1 input)": ["predict", "digits-mlp:1", "{input}"],
    "eval": ["eval", "digits-mlp:1"],
}


def _env(src: str | None, home: Path) -> dict[str, str]:
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "modelyard", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`modelyard {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed


def _prepare(home: Path, src: str | None) -> Path:
    env = _env(src, home)
    subprocess.run(
        [sys.executable, "-m", "modelyard", "train", str(SPEC), "--set", "train.epochs=2"],
        env=env,
        check=True,
        capture_output=True,
    )
    sample = home.parent / "one.json"
    sample.write_text(json.dumps([[0.0] * 64]))
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", action="append", help="a build's src folder (repeat for side by side)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    builds = args.src or [None]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        sample = _prepare(home, builds[0])
        times: dict[tuple[str | None, str], list[float]] = {}
        for _ in range(args.rounds):
            for name, cmd in COMMANDS.items():
                for src in builds:
                    argv = [a.replace("{input}", str(sample)) for a in cmd]
                    times.setdefault((src, name), []).append(_run(argv, _env(src, home)))
    head = "| command | " + " | ".join(f"{b or 'this checkout'} s" for b in builds)
    head += " | ratio |" if len(builds) == 2 else " |"
    print(head)
    print("|---|" + "---:|" * (len(builds) + (len(builds) == 2)))
    for name in COMMANDS:
        medians = [statistics.median(times[(src, name)]) for src in builds]
        row = f"| `{name}` | " + " | ".join(f"{m:.2f}" for m in medians)
        row += f" | {medians[0] / medians[1]:.1f}x |" if len(builds) == 2 else " |"
        print(row)
    print(f"\n{args.rounds} rounds, median wall time of a fresh `python -m modelyard` process; CPU: {_cpu()}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
