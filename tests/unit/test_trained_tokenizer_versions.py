"""A version whose tokenizer was trained on its own training split, re-measured after training.

WordPiece training is not deterministic (huggingface/tokenizers#1794), so `modelyard eval`,
compression and the explanation background, which re-create the training data from the spec,
must tokenize with the version's stored tokenizer, not a re-trained one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.compression import compress
from modelyard.compression.api import parent_data
from modelyard.data import Pipeline, load_source
from modelyard.data.split import derived_seed, holdout
from modelyard.errors import DataError
from modelyard.evaluation import evaluate_model
from modelyard.explaining.background import training_sample
from modelyard.predict import Predictor
from modelyard.store.checksums import write_checksums
from modelyard.workflow import TrainResult
from tests.support.text_models import CORPUS, intents_file, train_scratch

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TrainResult]:
    folder = tmp_path_factory.mktemp("trained-tokenizer")
    data = intents_file(folder)
    home = folder / "home"
    return home, data, train_scratch(home, data, epochs=1)  # one epoch: a loss far from 0, so ids matter


def test_eval_of_the_version_gives_the_runs_own_test_metrics_exactly(trained: tuple[Path, Path, TrainResult]) -> None:
    home, _, result = trained
    assert result.model_ref is not None and result.test_metrics["split"] == "test"
    assert 0 < result.test_metrics["loss"]
    assert evaluate_model(result.model_ref, home=home) == {"model": result.model_ref, **result.test_metrics}


def test_int8_compress_measures_the_parent_on_its_own_test_metrics(trained: tuple[Path, Path, TrainResult]) -> None:
    home, _, result = trained
    assert result.model_ref is not None
    out = compress(result.model_ref, quantize="int8", home=home, rounds=1)
    parent, child = out.rows[0], out.rows[1]
    assert parent.accuracy == pytest.approx(result.test_metrics["accuracy"], abs=1e-12)
    assert child.accuracy is not None and abs(child.accuracy - parent.accuracy) <= 0.1
    model = Predictor.load(out.model_ref, home=home)
    assert model.pipeline.state_dict() == Predictor.load(result.model_ref, home=home).pipeline.state_dict()
    assert model.predict(CORPUS).shape == (len(CORPUS), 3)


def test_the_explanation_background_is_tokenized_by_the_stored_tokenizer(
    trained: tuple[Path, Path, TrainResult],
) -> None:
    home, data, result = trained
    predictor = Predictor.load(result.model_ref or "", home=home)
    got = training_sample(predictor, size=20)
    # Reference: the training split cut as prepare cuts it (jsonl: a stratified 0.2 test holdout),
    # its raw texts through the stored pipeline, and the background's seeded rows of it.
    raw = load_source(predictor.spec.data.source, seed=0)
    y = predictor.pipeline.transform_y(raw.y_train)
    kept, _ = holdout(len(y), 0.2, seed=derived_seed(0, "test"), labels=y, what="the test split")
    ids = predictor.pipeline.transform_x(raw.x_train[kept])
    rows = np.random.default_rng(0).permutation(len(ids))[:20]
    np.testing.assert_array_equal(got, ids[rows].astype(np.float64))
    assert parent_data(predictor).pipeline is predictor.pipeline


def test_changed_training_texts_are_reported_by_eval_compress_and_explain(tmp_path: Path) -> None:
    data = intents_file(tmp_path)
    home = tmp_path / "home"
    result = train_scratch(home, data, epochs=1)
    ref = result.model_ref or ""
    assert evaluate_model(ref, home=home)["loss"] == result.test_metrics["loss"]
    data.write_text(data.read_text().replace("bank balance", "bank balances"))
    predictor = Predictor.load(ref, home=home)
    with pytest.raises(DataError, match=r"changed since it was trained.*evaluate on explicit data with --data"):
        evaluate_model(ref, home=home)
    with pytest.raises(DataError, match=r"changed since it was trained.*cannot be fine-tuned"):
        parent_data(predictor)
    with pytest.raises(DataError, match=r"changed since it was trained.*pass background= explicitly"):
        training_sample(predictor)


def test_a_version_saved_before_training_sha256_still_loads_and_predicts_alike(
    trained: tuple[Path, Path, TrainResult], tmp_path: Path
) -> None:
    home, _, result = trained
    current = Predictor.load(result.model_ref or "", home=home)
    # A copy of the version as saved before the digest existed (its checksums recorded again).
    folder = tmp_path / "old-home"
    shutil.copytree(home, folder)
    old = Predictor.load(result.model_ref or "", home=folder)
    assert old.version.path.is_relative_to(folder)
    meta_path = old.version.path / "preprocess.json"
    meta = json.loads(meta_path.read_text())
    assert "training_sha256" in meta["pipeline"]["steps"][0]["state"]
    del meta["pipeline"]["steps"][0]["state"]["training_sha256"]
    meta_path.write_text(json.dumps(meta))
    write_checksums(old.version.path)
    old = Predictor.load(result.model_ref or "", home=folder)
    assert old.pipeline.steps[0].training_sha256 is None
    torch.testing.assert_close(old.preprocess(CORPUS), current.preprocess(CORPUS), rtol=0, atol=0)
    np.testing.assert_array_equal(old.predict(CORPUS), current.predict(CORPUS))
    # Compared whole: only a re-training that reproduced the very tokenizer counts as the same data.
    stored = Pipeline.from_state(meta["pipeline"])
    assert current.pipeline.same_fit(stored)


def test_a_run_registered_later_keeps_the_tokenizer_its_weights_learned(tmp_path: Path) -> None:
    from modelyard import workflow
    from modelyard.store import RunStore

    data = intents_file(tmp_path)
    home = tmp_path / "home"
    trial = train_scratch(home, data, epochs=1, register=False)  # a tuning trial: weights in its checkpoint
    saved = json.loads((RunStore(home).run_dir(trial.run_id) / workflow.RUN_PIPELINE_FILE).read_text())
    ref = workflow.register_run(trial.run_id, home=home)
    version = Predictor.load(ref, home=home)
    # The reference: the run's own tokenizer (a re-training would give other ids to the same weights).
    assert version.pipeline.state_dict() == saved
    with torch.no_grad():
        net = trial.network.eval()
        want = net.probabilities(net(torch.from_numpy(Pipeline.from_state(saved).transform_x(CORPUS))))
    torch.testing.assert_close(version.predict_tensor(version.preprocess(CORPUS)), want)
    # Its texts changed since: another trial's checkpoint is not registered on other inputs.
    other = train_scratch(home, data, epochs=1, register=False)
    data.write_text(data.read_text().replace("bank balance", "bank balances"))
    with pytest.raises(DataError, match=rf"data of run {other.run_id} changed since it started"):
        workflow.register_run(other.run_id, home=home)
