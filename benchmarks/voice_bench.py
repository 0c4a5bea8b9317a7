"""Voice assistant benchmark: spoken CLINC150 queries through a served voice pipeline, over HTTP.

    python benchmarks/voice_bench.py --home /tmp/voice-home --n 500     # ~10 min on 2 shared cores
    python benchmarks/voice_bench.py --n 60 --out /tmp/voice_small.md   # a quick look

A seeded sample of ``--n`` in-scope CLINC150 TEST queries (``$MODELYARD_DATA/clinc150``) is spoken
by flite (Debian) voices awb, rms, slt and kal16 in turn, at their own speed (no stretch). No stage
of the pipeline was trained on these voices or on any speech from them: the intent model is trained
on text only, pocketsphinx's en-us acoustic model is CMU's (trained on recorded human speech), and
the only speech training in the repository (the FSDD digit example) trains a different model.

The intent model is ``examples/clinc150_minilm_frozen.yaml`` (trained into ``--home`` unless it is
there). Two pipelines over it are registered and served by one ``modelyard serve`` on 127.0.0.1:
the bundled en-us language model, and the domain language model built from the intent model's
training texts (``language_model: domain``, docs/voice.md). Each utterance is posted as a WAV to
both in turn (interleaved, one request at a time), so both meet the same load.

Reported per pipeline: word error rate (jiwer, over the sample: references spelled as spoken by
``modelyard.voice.normalize``, e.g. "3" → "three"), spoken-intent accuracy (the served answer's
intent against the query's label), beside the text-only intent accuracy (the same intent model on
the written query, and on its spoken-form spelling), and the median and p95 per utterance of the
HTTP round trip and of each stage's ``timings_ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INTENT_SPEC = ROOT / "examples" / "clinc150_minilm_frozen.yaml"
TEMPLATES = ROOT / "examples" / "voice" / "clinc150_answers.yaml"
VOICES = ("awb", "rms", "slt", "kal16")
PIPELINES = {"bundled-lm": "bundled", "domain-lm": "domain"}
STAGES = ("speech_to_text", "intent", "answer", "speech", "total")


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        "unknown CPU",
    )
    return f"{cpu}, {os.cpu_count()} cores shared with other sessions, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"


def clinc150() -> dict[str, Any]:
    for root in [
        *(p for p in os.environ.get("MODELYARD_DATA", "").split(os.pathsep) if p),
        str(ROOT.parent / "shared" / "datasets"),
    ]:
        path = Path(root) / "clinc150" / "data_full.json"
        if path.is_file():
            return json.loads(path.read_text())
    sys.exit("CLINC150 not found: set MODELYARD_DATA to the folder holding clinc150/")


def ensure_intent_model(home: Path) -> str:
    from modelyard.store import ModelStore

    name = "clinc150-minilm-frozen"
    if not ModelStore(home).list(name=name):
        print(f"training {INTENT_SPEC.name} into {home} ...", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "modelyard.cli.main", "train", str(INTENT_SPEC)], env=_env(home), check=True
        )
    return ModelStore(home).get(name).ref


def register(home: Path, intent_ref: str) -> dict[str, str]:
    from modelyard.store.pipelines import PipelineStore
    from modelyard.voice import register_pipeline

    refs = {}
    for name, lm in PIPELINES.items():
        found = [v for v in PipelineStore(home).list(name) if v.spec["stages"]["intent"]["model"] == intent_ref]
        if found:
            refs[name] = found[-1].ref
            continue
        spec = {
            "kind": "pipeline",
            "stages": {
                "speech_to_text": {"language_model": lm},
                "intent": {"model": intent_ref},
                "answer": {"templates": str(TEMPLATES)},
                "speech": {"voice": "slt"},
            },
        }
        refs[name] = register_pipeline(spec, name=name, home=home).ref
    return refs


def render(text: str, voice: str, cache: Path) -> bytes:
    import hashlib

    out = cache / f"{hashlib.sha256(f'{voice}|{text}'.encode()).hexdigest()[:24]}.wav"
    if not out.is_file():
        subprocess.run(
            ["flite", "-voice", voice, "-t", " " + text, "-o", str(out)], check=True, capture_output=True, timeout=60
        )
    return out.read_bytes()


def serve(home: Path, refs: list[str], port: int) -> subprocess.Popen:
    import httpx

    log = open(Path(tempfile.gettempdir()) / "voice-bench-serve.log", "wb")  # noqa: SIM115
    cmd = [
        sys.executable,
        "-m",
        "modelyard.cli.main",
        "serve",
        *refs,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timeout-s",
        "60",
    ]
    proc = subprocess.Popen(cmd, env=_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"modelyard serve exited with {proc.returncode}; see {log.name}")
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if ready.status_code == 200 and set(refs) <= set(ready.json().get("models", [])):
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"modelyard serve not ready after 300 s; see {log.name}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="store with the intent model (trained if missing)")
    parser.add_argument(
        "--intent-model", default=None, metavar="REF", help="a registered text classifier to use instead"
    )
    parser.add_argument("--n", type=int, default=500, help="spoken test queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "voice_bench.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import httpx
    import jiwer

    from modelyard.predict import Predictor
    from modelyard.store import ModelStore
    from modelyard.voice.normalize import normalize

    home = args.home or Path(tempfile.mkdtemp(prefix="voice-bench-"))
    os.environ["MODELYARD_HOME"] = str(home)
    data = clinc150()
    sample = random.Random(args.seed).sample(data["test"], args.n)  # in-scope test queries only (oos_test is apart)
    intent_ref = ModelStore(home).get(args.intent_model).ref if args.intent_model else ensure_intent_model(home)
    refs = register(home, intent_ref)
    model = Predictor.load(intent_ref, home=home)
    texts = [t for t, _ in sample]
    gold = [i for _, i in sample]
    written = model.predict_labels(texts)
    spoken_form = model.predict_labels([normalize(t) for t in texts])
    cache = home / "cache" / "voice-bench"
    cache.mkdir(parents=True, exist_ok=True)
    load_before = machine()
    if not args.port:
        import socket

        with socket.socket() as sock:  # a free port now; other sessions share this machine
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    proc = serve(home, list(refs.values()), args.port)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in refs}
    started = time.time()
    try:
        with httpx.Client(timeout=120) as http:
            for k, (text, intent) in enumerate(sample):
                wav = render(text, VOICES[k % len(VOICES)], cache)
                order = list(refs) if k % 2 == 0 else list(reversed(refs))  # alternate who goes first
                for name in order:
                    t0 = time.perf_counter()
                    response = http.post(
                        f"http://127.0.0.1:{args.port}/v1/models/{name}/predict",
                        content=wav,
                        headers={"content-type": "audio/wav"},
                    )
                    trip = (time.perf_counter() - t0) * 1000.0
                    response.raise_for_status()
                    answer = response.json()
                    rows[name].append(
                        {
                            "ref": normalize(text),
                            "hyp": answer["transcript"],
                            "heard_intent": answer["intent"],
                            "gold": intent,
                            "trip_ms": trip,
                            **answer["timings_ms"],
                        }
                    )
                if (k + 1) % 50 == 0:
                    print(
                        f"{k + 1}/{len(sample)} utterances, {time.time() - started:.0f} s", file=sys.stderr, flush=True
                    )
    finally:
        stop(proc)
    load_after = machine()
    text_acc = float(np.mean([w == g for w, g in zip(written, gold)]))
    spoken_form_acc = float(np.mean([w == g for w, g in zip(spoken_form, gold)]))
    results = {}
    for name, got in rows.items():
        results[name] = {
            "ref": refs[name],
            "wer": jiwer.wer([r["ref"] for r in got], [r["hyp"] for r in got]),
            "spoken_intent_accuracy": float(np.mean([r["heard_intent"] == r["gold"] for r in got])),
            "latency_ms": {
                key: {"median": _pct([r[key] for r in got], 50), "p95": _pct([r[key] for r in got], 95)}
                for key in ("trip_ms", *STAGES)
            },
        }
    lines = [
        "# Voice assistant benchmark (benchmarks/voice_bench.py)",
        "",
        f"{len(sample)} seeded (seed {args.seed}) in-scope CLINC150 test queries, spoken by flite voices {', '.join(VOICES)} in turn;",
        f"intent model {intent_ref}{' (examples/clinc150_minilm_frozen.yaml)' if not args.intent_model else ''}; pipelines served by one `modelyard serve` on 127.0.0.1,",
        "each utterance posted as a WAV to both in turn. No pipeline stage was trained on these voices.",
        "",
        f"Text-only intent accuracy (the same model, no speech): **{text_acc:.1%}** on the written queries, {spoken_form_acc:.1%} on their spoken-form spelling.",
        "",
        "| pipeline | language model | WER | spoken-intent accuracy | round trip median / p95 (ms) | speech to text median / p95 | intent | speech (flite) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lat = r["latency_ms"]
        lines.append(
            f"| {r['ref']} | {PIPELINES[name]} | **{r['wer']:.1%}** | **{r['spoken_intent_accuracy']:.1%}** | "
            f"{lat['trip_ms']['median']:.0f} / {lat['trip_ms']['p95']:.0f} | {lat['speech_to_text']['median']:.0f} / {lat['speech_to_text']['p95']:.0f} | "
            f"{lat['intent']['median']:.1f} / {lat['intent']['p95']:.1f} | {lat['speech']['median']:.0f} / {lat['speech']['p95']:.0f} |"
        )
    base, dom = results["bundled-lm"], results["domain-lm"]
    lines += [
        "",
        f"Domain LM vs bundled: WER ratio {dom['wer'] / max(base['wer'], 1e-9):.2f}, speech-to-text median time ratio "
        f"{dom['latency_ms']['speech_to_text']['median'] / base['latency_ms']['speech_to_text']['median']:.2f}.",
        "",
        f"Machine: {load_before} (before), {load_after} (after); {time.time() - started:.0f} s for the HTTP part; {time.strftime('%Y-%m-%d')}.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "n": len(sample),
                "text_accuracy": text_acc,
                "spoken_form_text_accuracy": spoken_form_acc,
                "pipelines": results,
            },
            indent=2,
        )
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
