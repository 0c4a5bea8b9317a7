"""build_model: folding of the final activation, determinism, shapes, summaries, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modelyard.nn as mnn
from modelyard.errors import ShapeError, SpecError
from modelyard.nn import Network, build_model, describe, parameter_count
from modelyard.spec import ModelSpec

CLASSIFIER = {"input": [6], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 4, "activation": "softmax"}]}


def spec(raw: dict) -> ModelSpec:
    return ModelSpec.model_validate(raw)


def seeded(raw: dict, loss: str | None = None, seed: int = 0) -> Network:
    torch.manual_seed(seed)
    return build_model(spec(raw), loss=loss)


def test_public_surface() -> None:
    assert sorted(mnn.__all__) == sorted(["build_model", "Network", "LAYERS", "parameter_count", "describe"])


def test_shapes_and_dtypes() -> None:
    net = seeded(CLASSIFIER)
    assert isinstance(net, nn.Module)
    assert net.input_shape == (6,) and net.output_shape == (4,)
    assert net.input_dtype == torch.float32
    text = seeded({"input": [7], "layers": [{"embedding": 20, "dim": 3}, "flatten", {"dense": 2}]})
    assert text.input_dtype == torch.int64 and text.output_shape == (2,)
    assert tuple(text(torch.randint(0, 20, (5, 7))).shape) == (5, 2)


@pytest.mark.parametrize(
    "raw",
    [CLASSIFIER, {"input": [6], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 4}, "softmax"]}],
)
def test_cross_entropy_folds_the_final_softmax(raw: dict) -> None:
    folded = seeded(raw, loss="cross_entropy")
    plain = seeded(raw)
    x = torch.randn(5, 6)
    logits = folded(x)
    assert folded.output_activation == "softmax" and plain.output_activation is None
    # Same weights either way; the folded network returns the logits the loss wants.
    torch.testing.assert_close(torch.softmax(logits, dim=1), plain(x))
    assert not torch.allclose(logits.sum(dim=1), torch.ones(5))
    probs = folded.predict(x)
    torch.testing.assert_close(probs, torch.softmax(logits, dim=1))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))
    assert not probs.requires_grad
    assert folded.state_dict().keys() == plain.state_dict().keys()


def test_cross_entropy_without_final_softmax_still_reports_softmax() -> None:
    net = seeded({"input": [3], "layers": [{"dense": 4}]}, loss="cross_entropy")
    x = torch.randn(2, 3)
    assert net.output_activation == "softmax"
    torch.testing.assert_close(net.predict(x), torch.softmax(net(x), dim=1))


def test_binary_cross_entropy_folds_sigmoid() -> None:
    raw = {"input": [3], "layers": [{"dense": 1, "activation": "sigmoid"}]}
    folded, plain = seeded(raw, loss="binary_cross_entropy"), seeded(raw)
    x = torch.randn(4, 3)
    assert folded.output_activation == "sigmoid"
    torch.testing.assert_close(torch.sigmoid(folded(x)), plain(x))
    torch.testing.assert_close(folded.predict(x), plain(x))


def test_other_losses_keep_every_activation() -> None:
    net = seeded(CLASSIFIER, loss="mse")
    x = torch.randn(3, 6)
    assert net.output_activation is None
    torch.testing.assert_close(net(x).sum(dim=1), torch.ones(3))
    torch.testing.assert_close(net.predict(x), net(x))


def test_folded_weights_load_into_unfolded_network() -> None:
    folded, plain = seeded(CLASSIFIER, loss="cross_entropy", seed=1), seeded(CLASSIFIER, seed=2)
    plain.load_state_dict(folded.state_dict())
    x = torch.randn(2, 6)
    torch.testing.assert_close(plain(x), folded.predict(x))


def test_same_seed_same_weights_and_rebuild_from_stored_spec() -> None:
    raw = {"input": [1, 8, 8], "layers": [{"conv2d": 3, "init": "he"}, "flatten", {"dense": 2, "init": "normal"}]}
    a = seeded(raw, seed=5)
    stored = spec(raw).model_dump(mode="json")
    torch.manual_seed(5)
    b = build_model(ModelSpec.model_validate(stored), loss="cross_entropy")
    c = seeded(raw, seed=6)
    for (key, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), key
        if key.endswith("weight"):  # biases are zeros whenever `init` is given
            assert not torch.equal(va, vc), key


def test_predict_uses_eval_mode_and_restores_training_mode() -> None:
    net = seeded({"input": [50], "layers": [{"dropout": 0.5}]})
    net.train()
    x = torch.ones(2, 50)
    torch.testing.assert_close(net.predict(x), x)
    assert net.training


def test_describe_and_parameter_count() -> None:
    net = seeded(
        {"input": [1, 6, 6], "layers": [{"conv2d": 2, "kernel": 3}, "relu", "flatten", {"dense": 3}, {"dense": 3}]}
    )
    rows = describe(net)
    assert [r["name"] for r in rows] == ["conv2d", "relu", "flatten", "dense", "dense_1"]
    assert [r["type"] for r in rows] == ["conv2d", "relu", "flatten", "dense", "dense"]
    assert [r["output_shape"] for r in rows] == [[2, 4, 4], [2, 4, 4], [32], [3], [3]]
    assert [r["params"] for r in rows] == [2 * 9 + 2, 0, 0, 32 * 3 + 3, 3 * 3 + 3]
    assert rows[3]["field"] == "model.layers[3]"
    assert parameter_count(net) == sum(r["params"] for r in rows) == sum(p.numel() for p in net.parameters())
    net.layers[0].conv.weight.requires_grad_(False)
    assert parameter_count(net, trainable_only=True) == parameter_count(net) - 18


def test_dense_after_conv_without_flatten_applies_to_last_axis() -> None:
    net = seeded({"input": [2, 5, 5], "layers": [{"conv2d": 3}, {"dense": 4}]})
    assert net.output_shape == (3, 3, 4)
    assert tuple(net(torch.randn(2, 2, 5, 5)).shape) == (2, 3, 3, 4)


def test_build_accepts_a_plain_mapping() -> None:
    net = build_model({"input": 3, "layers": [{"dense": 2}]})
    assert net.input_shape == (3,) and net.output_shape == (2,)
    with pytest.raises(SpecError, match=r"model\.layers"):
        build_model({"input": [3], "layers": []})


@pytest.mark.parametrize(
    ("raw", "error", "field"),
    [
        ({"input": [1, 5, 5], "layers": [{"conv2d": 4, "kernel": 7}]}, ShapeError, "model.layers[0].kernel"),
        ({"input": [784], "layers": [{"dense": 10}, {"reshape": [3, 3]}]}, ShapeError, "model.layers[1].shape"),
        ({"input": [4], "layers": [{"dense": 4}, {"embedding": 10, "dim": 2}]}, ShapeError, "model.layers[1]"),
        ({"input": [4], "layers": [{"dense": 4}, {"conv1d": 2}]}, ShapeError, "model.layers[1]"),
        ({"input": [4], "layers": [{"dense": 4}, {"densse": 2}]}, SpecError, "model.layers[1]"),
    ],
)
def test_bad_specs_fail_at_build_naming_the_layer(raw: dict, error: type, field: str) -> None:
    with pytest.raises(error) as info:
        build_model(raw)
    assert info.value.field == field
    assert field in str(info.value)


def test_embedding_after_other_layers_explains_the_fix() -> None:
    with pytest.raises(ShapeError, match="integer token ids.*first layer"):
        build_model(spec({"input": [4], "layers": [{"dense": 4}, {"embedding": 10, "dim": 2}]}))


def test_unknown_layer_suggests_dense() -> None:
    with pytest.raises(SpecError, match=r"`model\.layers\[0\]`.*did you mean 'dense'\?"):
        spec({"input": [4], "layers": [{"densse": 3}]})
