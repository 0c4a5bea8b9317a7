"""A small intent model on CLINC150 and a voice pipeline over it, for the voice tests (trained once per module)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.support.datasets import shared_dataset

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def bag_spec() -> dict[str, Any]:
    """Mean-pooled word pieces on CLINC150 (tests/unit/test_text_workflow.py's model), 2 epochs: ~10 s, ~86%."""
    return {
        "name": "clinc-bag",
        "seed": 0,
        "data": {"source": {"clinc150": None, "path": str(shared_dataset("clinc150"))}, "preprocess": [{"tokenize": None, "max_length": 32, "vocab_size": 4000}]},
        "model": {"input": [32], "layers": [{"embedding": 4000, "dim": 64, "pad": 0}, {"token_pool": "mean"}, {"dense": 150}]},
        "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 0.005, "batch_size": 32, "epochs": 2, "group_by_length": True, "metrics": ["accuracy"]},
    }  # fmt: skip


def pipeline_spec(**speech_to_text: Any) -> dict[str, Any]:
    return {
        "kind": "pipeline",
        "stages": {
            "speech_to_text": speech_to_text,
            "intent": {"model": "clinc-bag"},
            "answer": {"templates": str(EXAMPLES / "voice" / "clinc150_answers.yaml")},
            "speech": {"voice": "slt"},
        },
    }


def flite_wav(text: str, voice: str, folder: Path) -> bytes:
    """``text`` spoken by flite's ``voice`` (16 kHz for awb, rms, slt, kal16; 8 kHz for kal)."""
    out = folder / f"{abs(hash((text, voice)))}.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def spoken_sample(app: Any, route: str, queries: list[tuple[str, str]], folder: Path) -> dict[str, float]:
    """WER (jiwer) and spoken-intent accuracy of ``queries`` ([text, intent]) spoken by flite's awb, rms,
    slt and kal16 in turn and posted as WAVs to ``route`` of ``app`` (in-process, its lifespan running)."""
    import jiwer
    from starlette.testclient import TestClient

    from modelyard.voice.normalize import normalize

    voices = ("awb", "rms", "slt", "kal16")
    refs, hyps, right = [], [], 0
    with TestClient(app, base_url="http://127.0.0.1:8000") as http:
        for k, (text, intent) in enumerate(queries):
            wav = flite_wav(text, voices[k % len(voices)], folder)
            answer = http.post(route, content=wav, headers={"content-type": "audio/wav"}).json()
            refs.append(normalize(text))
            hyps.append(answer["transcript"])
            right += answer["intent"] == intent
    return {"wer": jiwer.wer(refs, hyps), "accuracy": right / len(queries)}
