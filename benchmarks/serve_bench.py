"""Serving benchmark: modelyard's server vs a plain FastAPI app vs LitServe, side by side.

    python benchmarks/serve_bench.py                      # trains 1-epoch models in a temp home
    python benchmarks/serve_bench.py --home /tmp/bench --seconds 4 --out results.md

For the Fashion-MNIST MLP and CNN (``examples/fashion_{mlp,cnn}.yaml`` trained for one
epoch: accuracy does not matter for throughput), each server runs alone as its own
process on 127.0.0.1 and a bounded closed-loop load generator (``loadgen.py``, in this
process) measures requests/s and p50/p99 latency at 1, 16 and 64 concurrent clients,
one Fashion-MNIST image (784 pixel values as JSON; ``--payload floats``: scaled to [0, 1]) per
request. Servers:

- ``modelyard``: ``modelyard serve`` with its defaults (backend auto, batch 64, wait 2 ms)
- ``modelyard-torch``: the same with ``--backend torch`` (batching alone, no ONNX Runtime)
- ``plain``: FastAPI, sync endpoint, the torch model once per request (serve_baselines.py)
- ``litserve``: LitServe with batching (batch 64, timeout 2 ms) (serve_baselines.py)

Before the load, every server's answer to a sample is checked against in-process
``Predictor.records``. Prints (and with ``--out`` writes) markdown tables: the raw numbers
and the ratios of modelyard to each peer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from loadgen import Result, build_request, run_load  # noqa: E402

MODELS = {"fashion-mlp": ROOT / "examples" / "fashion_mlp.yaml", "fashion-cnn": ROOT / "examples" / "fashion_cnn.yaml"}
SERVERS = ["modelyard", "modelyard-torch", "modelyard-monitor-0.1", "modelyard-monitor-1", "plain", "litserve"]
MONITOR = "modelyard-monitor-"  # + the --monitor-sample share: modelyard's defaults with request logging on


def _env(home: Path) -> dict[str, str]:
    src = str(ROOT / "src")
    return {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def ensure_models(home: Path) -> None:
    """Train each example for one epoch unless the home already has a version of it."""
    from modelyard.store import ModelStore

    for name, spec in MODELS.items():
        if ModelStore(home).list(name=name):
            continue
        print(f"training {name} for 1 epoch into {home} ...", file=sys.stderr, flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "modelyard.cli.main",
                "train",
                str(spec),
                "--set",
                "train.epochs=1",
                "--no-progress",
            ],
            env=_env(home),
            check=True,
            stdout=subprocess.DEVNULL,
        )


def sample_images(shape: list[int], n: int = 32) -> np.ndarray:
    """Fashion-MNIST test images when the data set is installed, else random pixels."""
    try:
        from modelyard.data.mnist import IdxOptions, load_idx_dataset

        raw = load_idx_dataset("fashion-mnist", IdxOptions())
        x = np.asarray(raw.x_test if raw.x_test is not None else raw.x_train)[:n].reshape(n, *shape)
        return x.astype(np.int64) if np.array_equal(x, np.round(x)) else x  # pixels as JSON integers
    except Exception:  # only the request content changes, not what is measured
        return np.random.default_rng(0).integers(0, 256, size=(n, *shape))


def command(server: str, port: int, home: Path, refs: list[str] | None = None) -> tuple[list[str], str]:
    refs = list(MODELS) if refs is None else refs
    if server.startswith("modelyard"):
        backend = "torch" if server == "modelyard-torch" else "auto"
        monitor = ["--monitor-sample", server.removeprefix(MONITOR)] if server.startswith(MONITOR) else []
        return [
            sys.executable,
            "-m",
            "modelyard.cli.main",
            "serve",
            *refs,
            "--port",
            str(port),
            "--backend",
            backend,
            *monitor,
        ], "/readyz"
    script = str(HERE / "serve_baselines.py")
    return [sys.executable, script, server, *refs, "--port", str(port), "--home", str(home)], (
        "/healthz" if server.startswith("plain") else "/health"
    )


def start(server: str, port: int, home: Path, refs: list[str] | None = None) -> subprocess.Popen:
    import httpx

    cmd, probe = command(server, port, home, refs)
    log = open(Path(tempfile.gettempdir()) / f"serve-bench-{server}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server} exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"{server} not ready after 180 s; see {log.name}")


def cpu_seconds(proc: subprocess.Popen) -> Callable[[], float]:
    """The CPU seconds (user + system) of ``proc`` and its live children so far (psutil)."""
    import psutil

    root = psutil.Process(proc.pid)

    def read() -> float:
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            try:
                times = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    return read


def monitor_cpu_seconds(port: int) -> Callable[[], float]:
    """The served models' ``modelyard_monitor_cpu_seconds`` (the monitor's background CPU) from /metrics."""
    import httpx

    def read() -> float:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("modelyard_monitor_cpu_seconds{")
        )

    return read


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def check_answers(
    server: str, port: int, bodies: dict[str, list[bytes]], predictors: dict[str, Any], images: dict[str, np.ndarray]
) -> None:
    """Same labels and probabilities (to 1e-5) as in-process predict, or the run stops."""
    import httpx

    for name, predictor in predictors.items():
        got = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/{name}/predict",
            content=bodies[name][0],
            headers={"content-type": "application/json"},
            timeout=30,
        ).json()["predictions"]
        want = predictor.records(images[name][:1].astype(np.float32))
        if got[0]["label"] != want[0]["label"] or not np.allclose(
            got[0]["probabilities"], want[0]["probabilities"], atol=1e-5
        ):
            raise RuntimeError(f"{server} answers {got[0]} for {name}, in-process predict {want[0]}")


def markdown(results: dict[tuple[str, str, int], Result], servers: list[str], clients: list[int]) -> str:
    lines = ["| model | clients | server | req/s | p50 ms | p99 ms | errors |", "|---|---:|---|---:|---:|---:|---:|"]
    for model in MODELS:
        for c in clients:
            for s in servers:
                r = results.get((model, s, c))
                if r is not None:
                    lines.append(f"| {model} | {c} | {s} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {r.errors} |")
    peers = [s for s in ("plain", "litserve") if s in servers]
    ours = [s for s in ("modelyard", "modelyard-torch") if s in servers]
    if not (peers and ours):
        return "\n".join(lines)
    head = "| model | clients | " + " | ".join(f"{o} / {p} req/s | {o} / {p} p99" for o in ours for p in peers) + " |"
    lines += [
        "",
        "Ratios (req/s: higher is better for modelyard; p99: lower is better):",
        "",
        head,
        "|---|---:|" + "---:|" * (2 * len(ours) * len(peers)),
    ]
    for model in MODELS:
        for c in clients:
            cells = []
            for o in ours:
                for p in peers:
                    a, b = results.get((model, o, c)), results.get((model, p, c))
                    cells += [f"{a.rps / b.rps:.2f}x", f"{a.p99 / b.p99:.2f}x"] if a and b and b.rps else ["-", "-"]
            lines.append(f"| {model} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def monitor_cost(runs: dict[tuple[str, str, int], list[Result]], servers: list[str], clients: list[int]) -> list[str]:
    """req/s and server CPU per request with ``--monitor-sample`` s against 0 (``modelyard``), round by round.

    The servers take turns within each round, so a round's ratio compares them under the same
    background load; the median of the rounds' ratios and their range are reported. The server's
    CPU time per answered request (its process tree, psutil) is what recording adds to each
    request's work; other processes on a shared machine move it far less than req/s. The
    monitor's own CPU per request (``modelyard_monitor_cpu_seconds``: its background flushes and
    checks) is the part of that which monitoring adds off the request path.
    """
    watched = [s for s in servers if s.startswith(MONITOR)]
    if not watched or "modelyard" not in servers:
        return []
    shares = [s.removeprefix(MONITOR) for s in watched]
    lines = [
        "",
        "Request-path cost of monitoring: req/s and server CPU per request with `--monitor-sample` s "
        "against 0, per round (median [min-max] of the rounds; 1.000x: no cost):",
        "",
        "| model | clients | sample 0 req/s | sample 0 CPU us/req | "
        + " | ".join(f"sample {s} req/s | req/s {s} / 0 | CPU {s} / 0 | monitor CPU us/req" for s in shares)
        + " |",
        "|---|---:|---:|---:|" + "---:|---:|---:|---:|" * len(shares),
    ]

    def spread(values: list[float]) -> str:
        values = sorted(values)
        return f"{statistics.median(values):.3f}x [{values[0]:.2f}-{values[-1]:.2f}]" if values else "-"

    for model in MODELS:
        for c in clients:
            base = runs.get((model, "modelyard", c))
            if not base:
                continue
            cells = [
                f"{statistics.median(r.rps for r in base):,.0f}",
                f"{statistics.median(r.cpu_us or 0.0 for r in base):,.0f}",
            ]
            for server in watched:
                mine = runs.get((model, server, c), [])
                pairs = list(zip(mine, base))
                if not pairs:
                    cells += ["-", "-", "-", "-"]
                    continue
                own = sorted(v for r in mine if (v := r.per_request("monitor")) is not None)
                cells += [
                    f"{statistics.median(r.rps for r in mine):,.0f}",
                    spread([m.rps / b.rps for m, b in pairs if b.rps]),
                    spread([m.cpu_us / b.cpu_us for m, b in pairs if m.cpu_us and b.cpu_us]),
                    f"{statistics.median(own):.1f} [{own[0]:.1f}-{own[-1]:.1f}]" if own else "-",
                ]
            lines.append(f"| {model} | {c} | " + " | ".join(cells) + " |")
    return lines


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores shared with other users, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--home", type=Path, default=None, help="store with fashion-mlp/fashion-cnn (trained if missing)"
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=[s for s in SERVERS if not s.startswith(MONITOR)],
        help=f"the {MONITOR}* servers measure the request-path cost of monitoring against modelyard (sample 0)",
    )
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="models put under load")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every cell; the median round is reported")
    parser.add_argument("--port", type=int, default=8765, help="first port; servers take consecutive ones")
    parser.add_argument(
        "--payload",
        choices=["pixels", "floats"],
        default="pixels",
        help="instances as integer pixels (0-255) or as floats in [0, 1] (pixels / 255)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()

    home = (args.home or Path(tempfile.mkdtemp(prefix="modelyard-bench-"))).resolve()
    os.environ["MODELYARD_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "src"))
    ensure_models(home)
    before = machine()
    from modelyard.predict import Predictor

    predictors = {name: Predictor.load(name, home=home) for name in MODELS}
    images = {name: sample_images(p.input_shape) for name, p in predictors.items()}
    if args.payload == "floats":  # what a client that scales its inputs sends: ~4x the JSON of pixels
        images = {name: x / 255.0 for name, x in images.items()}
    bodies = {
        name: [
            build_request(f"/v1/models/{name}/predict", json.dumps({"instances": [img.tolist()]}).encode())
            for img in images[name]
        ]
        for name in MODELS
    }
    plain_bodies = {
        name: [json.dumps({"instances": [img.tolist()]}).encode() for img in images[name]] for name in MODELS
    }

    # Phase 1: the uvicorn servers (idle ones use no CPU) are all up and take turns per
    # cell, in rotating order, so drifting background load hits them alike. Phase 2:
    # LitServe alone, since its idle workers poll and would slow the others down.
    phases = [[s for s in args.servers if s != "litserve"], [s for s in args.servers if s == "litserve"]]
    runs: dict[tuple[str, str, int], list[Result]] = {}
    for servers in (p for p in phases if p):
        ports = {server: args.port + i for i, server in enumerate(servers)}
        procs = {}
        try:
            for server in servers:
                procs[server] = start(server, ports[server], home)
                check_answers(server, ports[server], plain_bodies, predictors, images)
            turn = 0
            for _ in range(args.rounds):
                for model in args.models:
                    for clients in args.clients:
                        order = servers[turn % len(servers) :] + servers[: turn % len(servers)]
                        turn += 1
                        for server in order:
                            r = run_load(
                                ports[server],
                                bodies[model],
                                clients,
                                warmup=args.warmup,
                                seconds=args.seconds,
                                probes={"server": cpu_seconds(procs[server])}
                                | (
                                    {"monitor": monitor_cpu_seconds(ports[server])}
                                    if server.startswith(MONITOR)
                                    else {}
                                ),
                            )
                            runs.setdefault((model, server, clients), []).append(r)
                            print(
                                f"{server:16s} {model:12s} {clients:3d} clients: {r.rps:8.0f} req/s  p50 {r.p50:7.2f} ms  "
                                f"p99 {r.p99:7.2f} ms  server CPU {r.cpu_us:7.1f} us/req"
                                + (f" (monitor {r.per_request('monitor'):5.1f})" if "monitor" in r.spent else "")
                                + f"  errors {r.errors}",
                                file=sys.stderr,
                                flush=True,
                            )
        finally:
            for proc in procs.values():
                stop(proc)
    # The median round by requests/s stands for each cell (the lower middle one of an even count).
    results = {key: sorted(rs, key=lambda r: r.rps)[(len(rs) - 1) // 2] for key, rs in runs.items()}

    cpu = os.cpu_count()
    after = machine()
    header = (
        f"Serving benchmark: {args.seconds:g} s per cell after {args.warmup:g} s warm-up, median of {args.rounds} "
        f"round(s), {args.payload} payload, {cpu} CPU cores shared by server and load generator, "
        f"torch {__import__('torch').__version__}.\nMachine: {before} (before); {after} (after).\n"
    )
    table = (
        header
        + "\n"
        + "\n".join([markdown(results, args.servers, args.clients), *monitor_cost(runs, args.servers, args.clients)])
        + "\n"
    )
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
