"""Monitoring benchmark: false-alarm and detection rates of a served Fashion-MNIST MLP's monitor.

    python benchmarks/monitor_bench.py                         # trains examples/fashion_mlp.yaml in a temp home
    python benchmarks/monitor_bench.py --home /tmp/mon --out benchmarks/results/monitor_bench.md

The MLP (``examples/fashion_mlp.yaml``, 10 epochs; Fashion-MNIST from ``$MODELYARD_DATA`` or
``/usr/share/datasets``) is registered with its training reference. Windows of test images (the
test split less the 5,000 rows the reference's outputs were computed on, ``monitoring.simulate``)
are checked by the monitor's own code: each image one request recorded in the request log as
``modelyard serve --monitor-sample 1`` records it, then ``ModelMonitor.report`` (what
``GET /v1/models/{name}/monitor`` answers) and its alerts. A window alarms when any check alerts.

- false alarms: unshifted windows of 100 and of 500 requests;
- detection: a 2-pixel translation of half the images at 100 requests (one random direction per
  image, and each fixed direction), Gaussian noise sigma 0.05 of the pixel range at 500.

Hundreds of windows over HTTP would take the shared 2-core machine most of an hour, so the many
windows go through the in-process monitor, and ``--http-windows`` of each kind are sent through
a real ``modelyard serve --monitor-sample 1`` (one POST per image, then GET .../monitor): its
alerts and p-values are compared with the in-process report of the same images. Every rate is
given with its count and a 95% Clopper-Pearson interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from serve_bench import _env, machine, start, stop  # noqa: E402

NAME = "fashion-mlp"
SPEC = ROOT / "examples" / "fashion_mlp.yaml"


def ensure_model(home: Path) -> None:
    from modelyard.store import ModelStore

    if ModelStore(home).list(name=NAME):
        return
    print(f"training {NAME} into {home} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "modelyard.cli.main", "train", str(SPEC), "--no-progress"]
    subprocess.run(cmd, env=_env(home), check=True, stdout=subprocess.DEVNULL)


def conditions(windows: int, fa_windows: int) -> list[tuple[str, int, int, Any]]:
    """(label, requests per window, windows, shift of the raw pixels or None)."""
    from modelyard.monitoring.simulate import gaussian_noise, translate_half

    def moved(direction: int | None) -> Any:
        return lambda x, rng: translate_half(x, rng, direction=direction)

    return [
        ("unshifted", 100, fa_windows, None),
        ("unshifted", 500, fa_windows, None),
        ("translate 2 px, half, random direction", 100, windows, moved(None)),
        *((f"translate 2 px, half, all {way}", 100, windows // 2, moved(d)) for d, way in enumerate(DIRECTIONS)),
        ("gaussian noise sigma 0.05", 500, windows, gaussian_noise),
        ("gaussian noise sigma 0.05", 100, windows // 2, gaussian_noise),
    ]


DIRECTIONS = ("right", "left", "down", "up")


def draw(pool: np.ndarray, size: int, shift: Any, rng: np.random.Generator) -> np.ndarray:
    x = pool[rng.choice(len(pool), size, replace=False)]
    return x if shift is None else shift(x, rng)


async def _serve_window(port: int, raw: np.ndarray, clients: int = 8) -> dict[str, Any]:
    """One POST per image (``clients`` at a time), then the monitor report of the last ``len(raw)`` logged."""
    import httpx

    base = f"http://127.0.0.1:{port}/v1/models/{NAME}"
    whole = bool(np.array_equal(raw, np.round(raw)))
    bodies = [json.dumps({"instances": [(img.astype(np.int64) if whole else img).tolist()]}) for img in raw]
    queue = iter(bodies)
    async with httpx.AsyncClient(timeout=60) as client:

        async def worker() -> None:
            for body in queue:
                r = await client.post(f"{base}/predict", content=body, headers={"content-type": "application/json"})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(clients)))
        r = await client.get(f"{base}/monitor", params={"window": len(raw)})
        r.raise_for_status()
        return r.json()


def http_check(home: Path, port: int, picked: list[tuple[str, int, np.ndarray, dict[str, Any]]]) -> list[str]:
    """Send each picked window through a real server; compare its report with the in-process one."""
    from modelyard.monitoring.simulate import alarms_by_check

    proc = start("modelyard-monitor-1", port, home, refs=[NAME])
    rows, agree, worst, started = [], 0, 0.0, time.perf_counter()
    try:
        for label, size, raw, local in picked:
            served = asyncio.run(_serve_window(port, raw))
            same = alarms_by_check(served) == alarms_by_check(local)
            agree += same
            gap = abs(served["outputs"]["p_value"] - local["outputs"]["p_value"])
            worst = max(worst, gap)
            rows.append((label, size, sorted(alarms_by_check(served)), sorted(alarms_by_check(local)), gap))
    finally:
        stop(proc)
    seconds = time.perf_counter() - started
    requests = sum(size for _, size, _, _ in picked)
    lines = [
        f"HTTP check: {len(picked)} windows ({requests:,} predict requests, {requests / seconds:,.0f} req/s with the "
        f"monitor reports) through `modelyard serve {NAME} --monitor-sample 1`: the served alerts equal the in-process "
        f"ones in {agree}/{len(picked)} windows; largest output-shift p-value difference {worst:.2g}.",
        "",
        "| window | requests | served alerts | in-process alerts | output p difference |",
        "|---|---:|---|---|---:|",
    ]
    lines += [f"| {a} | {n} | {', '.join(s) or '-'} | {', '.join(i) or '-'} | {g:.2g} |" for a, n, s, i, g in rows]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help=f"store holding {NAME} (trained if missing)")
    parser.add_argument("--windows", type=int, default=200, help="windows per detection condition")
    parser.add_argument("--fa-windows", type=int, default=400, help="unshifted windows per window size")
    parser.add_argument("--http-windows", type=int, default=5, help="windows per condition also sent over HTTP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=8871)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()

    home = (args.home or Path(tempfile.mkdtemp(prefix="modelyard-monitor-bench-"))).resolve()
    os.environ["MODELYARD_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "src"))
    ensure_model(home)
    from modelyard.data.mnist import IdxOptions, load_idx_dataset
    from modelyard.monitoring.reference import load_reference
    from modelyard.monitoring.simulate import Tally, check_window, traffic_pool, window_monitor
    from modelyard.predict import Predictor

    predictor = Predictor.load(NAME, home=home)
    reference = load_reference(predictor.version)
    pool = traffic_pool(np.asarray(load_idx_dataset("fashion-mnist", IdxOptions()).x_test), seed=predictor.spec.seed)
    rng = np.random.default_rng(args.seed)
    before = machine()
    rows, picked, started = [], [], time.perf_counter()
    for label, size, count, shift in conditions(args.windows, args.fa_windows):
        monitor, tally = window_monitor(predictor, reference, size), Tally()
        for i in range(count):
            raw = draw(pool, size, shift, rng)
            report = check_window(monitor, predictor, raw)
            tally.add(report)
            if i < args.http_windows:
                picked.append((label, size, raw, report))
        low, high = tally.ci()
        checks = ", ".join(f"{k} {v}" for k, v in sorted(tally.by_check.items())) or "-"
        rows.append(
            f"| {label} | {size} | {tally.windows} | {tally.alarms} | {tally.rate:.1%} | {low:.1%}-{high:.1%} | {checks} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    http = http_check(home, args.port, picked) if picked else []
    test = predictor.version.metrics.get("test", {})
    table = [
        f"Monitoring benchmark: {NAME} ({predictor.ref}, test accuracy {test.get('accuracy', float('nan')):.4f}), "
        f"traffic pool {len(pool):,} test images, seed {args.seed}, {seconds:.0f} s in-process.",
        f"Machine: {before} (before); {machine()} (after).",
        "",
        "| traffic | requests per window | windows | alarmed | rate | 95% CI | alarms by check |",
        "|---|---:|---:|---:|---:|---|---|",
        *rows,
        "",
        *http,
    ]
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
