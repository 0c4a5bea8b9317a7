"""Attribution methods against references: closed forms for linear models, plain torch autograd
and a plain-torch integral for an MLP, known Shapley values, and a one-feature model for LIME."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.errors import DataError, InputError, SpecError
from modelyard.explaining import Explainer, explain
from modelyard.predict import Predictor
from tests.support.explaining import LIN_W, register, standardizer, training_rows

X_LIN = np.array([[1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.1, 2.0], [-1.2, 0.4, 0.9, -0.7]], dtype=np.float32)


@pytest.fixture
def lin(home: Path) -> str:
    return register("lin", home)


@pytest.fixture
def digits(home: Path) -> Explainer:
    return Explainer(Predictor.load(register("digits", home), home=home))


def digit_images(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data[10 : 10 + n].astype(np.float32)


def test_ig_of_a_linear_model_is_w_times_x_minus_baseline_in_raw_space(lin: str, home: Path) -> None:
    # f(x) = w·(x - mean)/std + b, so IG from the raw baseline b is (w/std)·(x - b), exactly.
    _, std = standardizer(lin, home)
    e = explain(lin, X_LIN)
    np.testing.assert_allclose(e.attributions, (LIN_W / std) * X_LIN, rtol=1e-5, atol=1e-6)
    baseline = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)
    given = explain(lin, X_LIN, baseline=baseline)
    np.testing.assert_allclose(given.attributions, (LIN_W / std) * (X_LIN - baseline), rtol=1e-5, atol=1e-6)
    # Completeness: the attributions add up to f(x) - f(baseline); f computed by predict.
    model = Predictor.load(lin, home=home)
    fx, fb = model.predict(X_LIN)[:, 0], model.predict(baseline)[0, 0]
    np.testing.assert_allclose(given.outputs, fx, rtol=1e-6)
    np.testing.assert_allclose(given.attribution_sums, fx - fb, rtol=1e-5, atol=1e-5)
    assert np.abs(given.convergence_delta).max() < 1e-5
    assert e.details["baseline"] == "zeros" and given.details["baseline"] == "given"


def test_ig_on_an_mlp_matches_a_plain_torch_path_integral(digits: Explainer) -> None:
    x = digit_images(3)
    e = digits.explain(x, steps=64)
    model = digits.predictor
    z = model.preprocess(x).double()
    b = model.preprocess(np.zeros(64, dtype=np.float32)).double()
    net = _double_copy(model.network)
    targets = torch.as_tensor(e.targets)
    # Reference: midpoint rule with 4000 points of the gradient of p_target along b → x.
    alphas = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    want = []
    for i in range(len(x)):
        path = (b + alphas[:, None] * (z[i] - b)).requires_grad_(True)
        probs = torch.softmax(net(path), dim=1)[:, targets[i]]
        (grads,) = torch.autograd.grad(probs.sum(), path)
        want.append(((z[i] - b[0]) * grads.mean(0)).numpy())
    np.testing.assert_allclose(e.attributions, np.stack(want), atol=2e-6)
    assert np.abs(e.convergence_delta).max() < 1e-5  # Captum's own completeness check
    p_x, p_b = model.predict(x), model.predict(np.zeros(64, dtype=np.float32))[0]
    np.testing.assert_allclose(e.attribution_sums, p_x[np.arange(3), e.targets] - p_b[e.targets], atol=1e-5)


def _double_copy(network: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(network).double().eval()


def test_saliency_is_the_absolute_gradient_from_autograd(digits: Explainer) -> None:
    x = digit_images(4)
    e = digits.explain(x, method="saliency")
    model = digits.predictor
    z = model.preprocess(x).requires_grad_(True)
    probs = torch.softmax(model.network(z), dim=1)
    assert list(e.targets) == probs.argmax(1).tolist()  # default target: the predicted class
    (grads,) = torch.autograd.grad(probs[torch.arange(4), torch.as_tensor(e.targets)].sum(), z)
    np.testing.assert_allclose(e.attributions, grads.abs().numpy(), rtol=1e-5, atol=1e-9)
    assert e.baseline_outputs is None and e.convergence_delta is None


def test_shap_of_a_linear_model_is_w_times_x_minus_its_background_mean(lin: str, home: Path) -> None:
    _, std = standardizer(lin, home)
    background = np.random.default_rng(5).normal(size=(40, 4)).astype(np.float32)
    e = explain(lin, X_LIN, method="shap", background=background)
    np.testing.assert_allclose(e.attributions, (LIN_W / std) * (X_LIN - background.mean(0)), rtol=1e-4, atol=1e-5)
    # Efficiency: the values sum to f(x) - E[f(background)]; E[f] is the reported baseline.
    model = Predictor.load(lin, home=home)
    np.testing.assert_allclose(e.baseline_outputs, model.predict(background)[:, 0].mean(), rtol=1e-5)
    np.testing.assert_allclose(e.attribution_sums, e.outputs - e.baseline_outputs, atol=1e-5)


def test_shap_default_background_is_a_seeded_sample_of_the_training_split(lin: str, home: Path) -> None:
    z_bg = training_rows(lin, home, 100)  # model-input form: standardized
    model = Predictor.load(lin, home=home)
    z = model.preprocess(X_LIN).double().numpy()
    e = explain(lin, X_LIN, method="shap")
    np.testing.assert_allclose(e.attributions, LIN_W * (z - z_bg.mean(0)), rtol=1e-4, atol=1e-5)
    assert e.details["background_rows"] == 100


def test_shap_with_sampled_coalitions_is_reproducible_and_adds_up(digits: Explainer) -> None:
    x = digit_images(2)
    state = np.random.get_state()
    first = digits.explain(x, method="shap")
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2] == after[2]  # the caller's global RNG is left alone
    second = digits.explain(x, method="shap")
    np.testing.assert_array_equal(first.attributions, second.attributions)
    np.testing.assert_allclose(first.attribution_sums, first.outputs - first.baseline_outputs, atol=1e-6)
    # A finer check than "adds up": the largest contributions agree in sign with integrated gradients.
    ig = digits.explain(x, steps=64)
    for i in range(2):
        top = np.argsort(-np.abs(first.attributions[i]))[:3]
        assert (np.sign(first.attributions[i, top]) == np.sign(ig.attributions[i, top])).mean() >= 2 / 3


def test_lime_finds_the_one_feature_the_model_uses(home: Path) -> None:
    ref = register("one", home)
    e = explain(ref, X_LIN, method="lime", top=4)
    for i in range(len(X_LIN)):
        ranked = e.top_features(i)
        assert ranked[0]["feature"] == "x3"
        assert ranked[0]["value"] == pytest.approx(float(X_LIN[i, 2]))
        assert abs(ranked[0]["contribution"]) > 10 * max(abs(r["contribution"]) for r in ranked[1:])
    assert 0.0 <= e.per_instance[0]["score"] <= 1.0


def test_targets_default_name_and_index(digits: Explainer) -> None:
    x = digit_images(3)
    predicted = digits.predictor.predict(x).argmax(1)
    e = digits.explain(x, method="saliency")
    assert list(e.targets) == list(predicted) and e.labels == [str(int(c)) for c in predicted]
    by_name = digits.explain(x, method="saliency", target="5")
    by_index = digits.explain(x, method="saliency", target=5)
    assert list(by_name.targets) == [5, 5, 5]
    np.testing.assert_array_equal(by_name.attributions, by_index.attributions)
    np.testing.assert_allclose(by_name.outputs, digits.predictor.predict(x)[:, 5], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"target": 10}, "expected an output index 0..9 or a class name (0, 1, 2"),
        ({"target": "cat"}, "received 'cat'"),
        ({"target": True}, "expected an output index or a class name, received True"),
        ({"method": "shapp"}, "did you mean 'shap'"),
        ({"method": 3}, "`method`: expected a string, received 3"),
        ({"method": "gradcam"}, "expected one of integrated_gradients, lime, saliency, shap"),
        ({"steps": 0}, "`steps`: expected a number >= 1"),
        ({"top": "many"}, "`top`: expected an integer"),
        ({"baseline": np.zeros(5)}, "`baseline`: Invalid input: expected input of shape [64]"),
        ({"baseline": np.zeros((2, 64))}, "expected one raw sample of shape [64] or one number, received 2 samples"),
        ({"baseline": [float("nan")] * 64}, "`baseline`: expected finite numbers"),
        (
            {"method": "shap", "background": np.zeros((3, 7))},
            "`background`: Invalid input: expected input of shape [64]",
        ),
    ],
)
def test_bad_options_are_one_line_spec_errors(digits: Explainer, kwargs: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        digits.explain(digit_images(1), **kwargs)
    assert fragment in info.value.message and "\n" not in info.value.message


def test_bad_inputs_are_input_errors(digits: Explainer) -> None:
    with pytest.raises(InputError, match=r"expected input of shape \[64\]"):
        digits.explain(np.zeros((2, 63)))
    with pytest.raises(InputError, match="finite"):
        digits.explain(np.full(64, np.inf))


def test_method_refusals_name_what_to_use_instead(home: Path) -> None:
    from tests.support.serving import register as register_served

    img = register_served("img", home)  # an image model (1x8x8)
    with pytest.raises(
        SpecError, match="shap explains tabular models, and img:1 takes 8x8 images; use integrated_gradients"
    ):
        explain(img, np.zeros((1, 1, 8, 8)), method="shap")
    clf = register_served("clf", home)  # its stored spec's data (xor) no longer gives its preprocessing
    with pytest.raises(DataError, match="changed since it was trained.*pass background= explicitly"):
        explain(clf, np.zeros((1, 4)), method="lime")
    assert (
        len(explain(clf, np.zeros((1, 4)), method="lime", background=np.random.default_rng(0).normal(size=(50, 4))))
        == 1
    )


def test_gradient_methods_refuse_token_id_models(home: Path) -> None:
    from modelyard.data import Pipeline
    from modelyard.nn import build_model
    from modelyard.spec import load_spec
    from modelyard.store import ModelStore

    spec = load_spec(
        {
            "name": "tokens",
            "data": {"source": "xor"},
            "train": {"loss": "cross_entropy"},
            "model": {
                "input": [5],
                "layers": [{"embedding": {"vocab": 10, "dim": 3}}, "flatten", {"dense": 2, "activation": "softmax"}],
            },
        }
    )
    ids = np.random.default_rng(0).integers(0, 10, size=(20, 5))
    pipeline = Pipeline.fit([], ids, task="classification", kind="sequence", num_classes=2)
    meta = {
        "pipeline": pipeline.state_dict(),
        "task": "classification",
        "num_classes": 2,
        "class_names": None,
        "feature_names": None,
        "kind": "sequence",
    }
    ref = (
        ModelStore(home)
        .register(
            "tokens",
            state_dict=build_model(spec.model, loss="cross_entropy").state_dict(),
            spec=spec.to_dict(),
            preprocess=meta,
            metrics={},
        )
        .ref
    )
    with pytest.raises(
        SpecError, match="integrated_gradients differentiates the model's inputs, but tokens:1 takes integer token ids"
    ):
        explain(ref, ids[:2])
    e = explain(ref, ids[:2], method="shap", background=ids)  # model-agnostic methods still work
    np.testing.assert_allclose(e.attribution_sums, e.outputs - e.baseline_outputs, atol=1e-6)


def test_top_level_function_survives_importing_the_package() -> None:
    import modelyard.explaining  # a package named `explain` would replace modelyard.explain here

    assert modelyard.explain is modelyard.explaining.explain


def test_a_missing_optional_package_says_how_to_install_it(lin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from modelyard.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "captum.attr", None)  # as if captum were not installed
    with pytest.raises(
        MissingDependencyError,
        match=r"needs the Python package captum: install it with pip install 'modelyard\[explain\]'",
    ):
        explain(lin, X_LIN)
