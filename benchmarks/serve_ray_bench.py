"""Serving on Ray Serve (2 replicas) vs ``modelyard serve``, side by side, at 1/16/64 clients.

    python benchmarks/serve_ray_bench.py                       # trains the 1-epoch MLP in a temp home
    python benchmarks/serve_ray_bench.py --home /tmp/bench --seconds 4 --rounds 3 --out results.md

The Fashion-MNIST MLP (``examples/fashion_mlp.yaml`` trained for one epoch, as serve_bench.py does)
is served two ways, both on 127.0.0.1, both with modelyard's batching defaults (batch 64, wait 2 ms):

- ``modelyard``: ``modelyard serve`` with its defaults (one worker process, backend auto)
- ``ray-serve``: ``modelyard.serving.ray_serve.deploy`` on a local Ray cluster (``ray.init`` in this
  process, 2 CPUs): 2 replicas of ``--num-cpus`` each behind Ray's HTTP proxy, the same app in each

Both stay up for the whole run and take turns per cell in rotating order, round after round, so
drifting background load hits them alike; a cell's reported number is the median round, and the
ratio table divides Ray Serve's median by modelyard's. Before the load both answers to a sample
are checked against in-process ``Predictor.records``. The load generator (``loadgen.py``, a
bounded closed loop in this process) shares the 2 cores with the servers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from loadgen import Result, build_request, run_load  # noqa: E402
from serve_bench import MODELS, _env, check_answers, machine, sample_images, start, stop  # noqa: E402

MODEL = "fashion-mlp"
SERVERS = ["modelyard", "ray-serve"]


def ensure_model(home: Path) -> None:
    """Train the MLP for one epoch unless the home has a version of it."""
    import subprocess

    from modelyard.store import ModelStore

    if ModelStore(home).list(name=MODEL):
        return
    print(f"training {MODEL} for 1 epoch into {home} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "modelyard.cli.main", "train", str(MODELS[MODEL]), "--set", "train.epochs=1"]
    subprocess.run([*cmd, "--no-progress"], env=_env(home), check=True, stdout=subprocess.DEVNULL)


def start_ray(home: Path, port: int, num_cpus: float) -> str:
    import ray

    from modelyard.serving import ServeConfig
    from modelyard.serving.ray_serve import RayServeOptions, deploy

    warnings.simplefilter("ignore", DeprecationWarning)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    options = RayServeOptions.make(num_cpus=num_cpus, min_replicas=2, max_replicas=2)
    return deploy([MODEL], ServeConfig.make(port=port), options, home=home)


def markdown(runs: dict[tuple[str, int], list[Result]], clients: list[int]) -> str:
    def median(rs: list[Result]) -> Result:
        return sorted(rs, key=lambda r: r.rps)[(len(rs) - 1) // 2]

    lines = ["| clients | server | req/s | p50 ms | p99 ms | errors |", "|---:|---|---:|---:|---:|---:|"]
    for c in clients:
        for s in SERVERS:
            if (s, c) in runs:
                r = median(runs[(s, c)])
                errors = sum(x.errors for x in runs[(s, c)])
                lines.append(f"| {c} | {s} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {errors} |")
    lines += ["", "| clients | ray-serve / modelyard req/s | ray-serve / modelyard p99 |", "|---:|---:|---:|"]
    for c in clients:
        if ("modelyard", c) in runs and ("ray-serve", c) in runs:
            a, b = median(runs[("ray-serve", c)]), median(runs[("modelyard", c)])
            lines.append(f"| {c} | {a.rps / b.rps:.2f}x | {a.p99 / b.p99:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="store with fashion-mlp (trained if missing)")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every cell; the median is reported")
    parser.add_argument("--num-cpus", type=float, default=0.5, help="CPUs Ray reserves per replica")
    parser.add_argument("--port", type=int, default=8775, help="modelyard serve's port; Ray's proxy takes the next")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()

    home = (args.home or Path(tempfile.mkdtemp(prefix="modelyard-bench-"))).resolve()
    os.environ["MODELYARD_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "src"))
    ensure_model(home)
    before = machine()
    from modelyard.predict import Predictor

    predictor = Predictor.load(MODEL, home=home)
    images = sample_images(predictor.input_shape)
    plain = [json.dumps({"instances": [img.tolist()]}).encode() for img in images]
    requests = [build_request(f"/v1/models/{MODEL}/predict", body) for body in plain]
    ports = {"modelyard": args.port, "ray-serve": args.port + 1}
    runs: dict[tuple[str, int], list[Result]] = {}
    proc: Any = None
    try:
        proc = start("modelyard", ports["modelyard"], home, [MODEL])
        start_ray(home, ports["ray-serve"], args.num_cpus)
        for server in SERVERS:
            check_answers(server, ports[server], {MODEL: plain}, {MODEL: predictor}, {MODEL: images})
        turn = 0
        for _ in range(args.rounds):
            for clients in args.clients:
                order = SERVERS[turn % 2 :] + SERVERS[: turn % 2]
                turn += 1
                for server in order:
                    r = run_load(ports[server], requests, clients, warmup=args.warmup, seconds=args.seconds)
                    runs.setdefault((server, clients), []).append(r)
                    print(
                        f"{server:10s} {clients:3d} clients: {r.rps:7.0f} req/s  p50 {r.p50:7.2f} ms  "
                        f"p99 {r.p99:7.2f} ms  errors {r.errors}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if proc is not None:
            stop(proc)
        try:
            import ray
            from ray import serve

            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
        except ImportError:
            pass
    after = machine()
    header = (
        f"Ray Serve vs modelyard serve: {MODEL}, one image per request, {args.seconds:g} s per cell after "
        f"{args.warmup:g} s warm-up, median of {args.rounds} interleaved rounds; Ray Serve: 2 replicas of "
        f"{args.num_cpus:g} CPU (Ray {__import__('ray').__version__}); modelyard serve: 1 worker. "
        f"Servers and load generator share {os.cpu_count()} cores.\nMachine: {before} (before); {after} (after).\n"
    )
    table = header + "\n" + markdown(runs, args.clients) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
