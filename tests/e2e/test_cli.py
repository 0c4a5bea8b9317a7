"""Drive the `modelyard` command line the way a person does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import modelyard
from modelyard.store import ModelStore, RunStore
from tests.support.cli import run_cli, run_process

DIGITS = {
    "name": "digits-small",
    "seed": 1,
    "data": {"source": "digits", "validation": 0.1, "test": 0.2, "preprocess": ["scale"]},
    "model": {"input": [64], "layers": [{"dense": 32, "activation": "relu"}, {"dense": 10, "activation": "softmax"}]},
    "train": {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.01,
        "batch_size": 64,
        "epochs": 5,
        "metrics": ["accuracy", "f1", "confusion_matrix"],
    },
}


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def trained(tmp_path) -> str:
    res = run_cli("train", str(write_spec(tmp_path / "digits.yaml", DIGITS)), "--no-progress")
    assert res.code == 0, res.err
    assert "registered model digits-small:1" in res.out
    return "digits-small:1"


def test_train_lists_runs_and_models(trained, tmp_path):
    runs = json.loads(run_cli("runs", "--json").out)
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["model"] == trained
    assert runs[0]["epochs"] == 5
    shown = json.loads(run_cli("runs", "show", runs[0]["id"][:8], "--json").out)
    assert [row["epoch"] for row in shown["history"]] == [1, 2, 3, 4, 5]
    assert shown["env"]["seed"] == 1 and shown["env"]["packages"]["torch"]
    assert shown["spec"]["train"]["optimizer"]["type"] == "adam"
    models = json.loads(run_cli("models", "--json").out)
    assert [m["ref"] for m in models] == [trained]
    info = json.loads(run_cli("models", "show", "digits-small", "--json").out)
    assert info["input_shape"] == [64] and len(info["class_names"]) == 10
    assert run_cli("models", "show", trained).code == 0
    assert run_cli("runs").code == 0 and run_cli("models").code == 0


def test_runs_show_writes_plots(trained, tmp_path):
    run_id = json.loads(run_cli("runs", "--json").out)[0]["id"]
    res = run_cli("runs", "show", run_id, "--plots", str(tmp_path / "plots"))
    assert res.code == 0, res.err
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == [f"{run_id}-confusion-matrix.png", f"{run_id}-learning-curves.png"]
    for name in pngs:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_matches_training_metrics(trained):
    res = run_cli("eval", trained, "--json")
    assert res.code == 0, res.err
    metrics = json.loads(res.out)
    stored = ModelStore().get(trained).metrics["test"]
    assert metrics["split"] == "test"
    assert metrics["accuracy"] == pytest.approx(stored["accuracy"], abs=1e-6)
    assert metrics["confusion_matrix"] == stored["confusion_matrix"]
    assert metrics == modelyard.evaluate(trained)


def test_predict_is_the_same_in_cli_and_python(trained, tmp_path):
    from sklearn.datasets import load_digits

    x = load_digits().data[:5].astype(np.float32)
    expected = modelyard.load(trained).predict(x)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.json").write_text(json.dumps({"instances": x.tolist()}))
    header = ",".join(f"f{i}" for i in range(64))
    (tmp_path / "x.csv").write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in x.tolist()))
    for name in ("x.npy", "x.json", "x.csv"):
        res = run_cli("predict", trained, str(tmp_path / name), "--json")
        assert res.code == 0, res.err
        out = json.loads(res.out)
        assert out["model"] == trained
        got = np.array([r["probabilities"] for r in out["predictions"]])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # an 8x8 grayscale image predicts like the same pixels as numbers
    Image.fromarray(x[0].reshape(8, 8).astype(np.uint8)).save(tmp_path / "digit.png")
    res = run_cli("predict", trained, str(tmp_path / "digit.png"), "--json")
    assert res.code == 0, res.err
    got = np.array(json.loads(res.out)["predictions"][0]["probabilities"])
    np.testing.assert_allclose(got, expected[0], rtol=1e-5, atol=1e-6)


def test_overrides_and_versions(tmp_path):
    spec = write_spec(tmp_path / "d.yaml", DIGITS)
    assert run_cli("train", str(spec), "--no-progress", "--set", "train.epochs=2").code == 0
    assert run_cli("train", str(spec), "--no-progress", "--set", "train.lr=0.005", "--set", "train.epochs=1").code == 0
    refs = [m["ref"] for m in json.loads(run_cli("models", "--json").out)]
    assert sorted(refs) == ["digits-small:1", "digits-small:2"]
    run = RunStore().get(ModelStore().get("digits-small:2").run_id)
    assert run.spec["train"]["lr"] == 0.005 and len(run.history) == 1


def test_resume_ends_where_an_uninterrupted_run_would(tmp_path, monkeypatch):
    import torch

    from modelyard import workflow

    spec = dict(DIGITS, name="resumable")
    full = modelyard.train(spec, progress=False, overrides=["train.epochs=4"])

    class Crash(Exception):
        pass

    def crash_after_two(epoch, metrics):
        if epoch == 2:
            raise Crash()

    with pytest.raises(Crash):
        workflow.train(spec, progress=False, overrides=["train.epochs=4"], on_epoch_end=crash_after_two)
    failed = [r for r in RunStore().list(status="failed")]
    assert len(failed) == 1 and len(failed[0].history) == 2
    res = run_cli("train", "--resume", failed[0].id, "--no-progress")
    assert res.code == 0, res.err
    resumed = RunStore().get(failed[0].id)
    assert resumed.status == "succeeded" and [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    a = ModelStore().get(full.model_ref).load_state_dict()
    b = ModelStore().get(resumed.model_ref).load_state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_main_job_process_prints_one_line_errors(tmp_path):
    """A real process: bad input → one line on stderr, non-zero exit, no traceback."""
    res = run_process("train", str(tmp_path / "nope.yaml"))
    assert res.code == 2 and res.err.strip().startswith("error: Spec file not found")
    assert "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1
    res = run_process("models", "show", "ghost")
    assert res.code == 4 and "Traceback" not in res.err and len(res.err.strip().splitlines()) == 1


def test_help_lists_every_command():
    out = run_cli("--help").out
    for cmd in ("train", "runs", "models", "eval", "predict"):
        assert cmd in out
