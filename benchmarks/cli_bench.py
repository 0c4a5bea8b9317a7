"""How long the CLI's everyday commands take, as a person runs them (a fresh process each time).

    python benchmarks/cli_bench.py                                  # this checkout
    python benchmarks/cli_bench.py --src OLD/src --src NEW/src      # two builds side by side

Trains examples/digits_mlp.yaml (2 epochs) into a throwaway store once and starts a control plane
(`modelyard server --workers 0`) on it for `jobs list`, then times each command in a fresh
`python -m modelyard` process, the builds alternating round by round (the machine is shared and
noisy, so compare the builds within one run). Prints the median wall time per command and, with
two builds, the ratio; then the same for CPU time (user + system of the process), which a busy
machine inflates far less than wall time. Each `--src` is put first on PYTHONPATH; the last one trains and serves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "digits_mlp.yaml"

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "models": ["models"],
    "models show": ["models", "show", "digits-mlp:1"],
    "runs": ["runs"],
    "jobs --help": ["jobs", "--help"],
    "jobs list": ["jobs", "list", "--url", "{url}"],
    "predict (1 JSON input)": ["predict", "digits-mlp:1", "{input}"],
    "predict (1 CSV input)": ["predict", "digits-mlp:1", "{csv}"],
    "eval": ["eval", "digits-mlp:1"],
}

# What a command cannot go below: the imports it needs, timed the same way (once per round).
FLOORS: dict[str, list[str]] = {
    "import torch": ["-c", "import torch"],
    "import sqlalchemy.orm": ["-c", "import sqlalchemy.orm"],
    "import numpy, pydantic": ["-c", "import numpy, pydantic.main"],
}


def _env(src: str | None, home: Path) -> dict[str, str]:
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _run(args: list[str], env: dict[str, str], python: tuple[str, ...] = ("-m", "modelyard")) -> tuple[float, float]:
    """Wall and CPU seconds of one `python -m modelyard ARGS` process (or `python ARGS` with ``python=()``)."""
    cpu, start = _cpu_s(), time.perf_counter()
    proc = subprocess.run([sys.executable, *python, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`modelyard {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return elapsed, _cpu_s() - cpu


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
    (home.parent / "one.csv").write_text(",".join(f"f{i}" for i in range(64)) + "\n" + ",".join(["0"] * 64) + "\n")
    return sample


@contextlib.contextmanager
def _server(home: Path, src: str | None) -> Iterator[str]:
    """A control plane on a free loopback port (API only), for `jobs list`; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "modelyard", "server", "--port", str(port), "--workers", "0"]
    proc = subprocess.Popen(cmd, env=_env(src, home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/v1/jobs", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"`modelyard server` exited ({proc.returncode}) before answering") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", action="append", help="a build's src folder (repeat for side by side)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    builds = args.src or [None]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        # The newest build (last) makes the store: it may write more (summary.json, read by `models show`),
        # which older builds ignore, so each build is timed on a version it can read its fastest way.
        sample = _prepare(home, builds[-1])
        times: dict[tuple[str | None, str], list[tuple[float, float]]] = {}
        floors: dict[str, list[tuple[float, float]]] = {}
        with _server(home, builds[-1]) as url:
            fill = {"{input}": str(sample), "{csv}": str(sample.with_suffix(".csv")), "{url}": url}
            for _ in range(args.rounds):
                for name, cmd in COMMANDS.items():
                    for src in builds:
                        argv = [fill.get(a, a) for a in cmd]
                        times.setdefault((src, name), []).append(_run(argv, _env(src, home)))
                for name, argv in FLOORS.items():
                    floors.setdefault(name, []).append(_run(argv, _env(None, home), python=()))
    for what, index in (("wall", 0), ("CPU", 1)):
        _table(builds, {key: [t[index] for t in runs] for key, runs in times.items()}, what)
    print("\n| floor: `python -c ...` | wall s | CPU s |\n|---|---:|---:|")
    for name, runs in floors.items():
        print(
            f"| `{name}` | {statistics.median(t[0] for t in runs):.2f} | {statistics.median(t[1] for t in runs):.2f} |"
        )
    print(f"\n{args.rounds} rounds, medians of a fresh `python -m modelyard` process each; CPU: {_cpu()}")


def _table(builds: list[str | None], times: dict[tuple[str | None, str], list[float]], what: str) -> None:
    head = f"\n| command ({what} time) | " + " | ".join(f"{b or 'this checkout'} s" for b in builds)
    head += " | ratio |" if len(builds) == 2 else " |"
    print(head)
    print("|---|" + "---:|" * (len(builds) + (len(builds) == 2)))
    for name in COMMANDS:
        medians = [statistics.median(times[(src, name)]) for src in builds]
        row = f"| `{name}` | " + " | ".join(f"{m:.2f}" for m in medians)
        row += f" | {medians[0] / medians[1]:.1f}x |" if len(builds) == 2 else " |"
        print(row)


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
