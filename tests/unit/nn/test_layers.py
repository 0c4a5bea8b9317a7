"""Each layer against plain torch with copied weights, and inferred shapes against real ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.errors import ShapeError, SpecError
from modelyard.nn import LAYERS, Network, build_model
from modelyard.spec import ModelSpec


def build(layers: list, input_shape: list[int], loss: str | None = None) -> Network:
    return build_model(ModelSpec.model_validate({"input": input_shape, "layers": layers}), loss=loss)


def single(layer: object, input_shape: list[int]) -> nn.Module:
    return build([layer], input_shape).layers[0]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# Plain-torch references for every activation name.
REFERENCE = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": F.elu,
    "selu": F.selu,
    "silu": F.silu,
    "softplus": F.softplus,
    "softmax": lambda x: torch.softmax(x, dim=1),
    "linear": lambda x: x,
}


@pytest.mark.parametrize("activation", sorted(REFERENCE))
def test_dense_matches_linear_plus_activation(activation: str) -> None:
    layer = single({"dense": 3, "activation": activation}, [5])
    ref = nn.Linear(5, 3)
    ref.load_state_dict({"weight": layer.linear.weight, "bias": layer.linear.bias})
    x = torch.randn(4, 5)
    torch.testing.assert_close(layer(x), REFERENCE[activation](ref(x)))


def test_dense_on_rank3_input_applies_to_last_axis_like_keras() -> None:
    net = build([{"dense": 2, "use_bias": False}], [3, 4, 5])
    assert net.output_shape == (3, 4, 2)
    lin = net.layers[0].linear
    assert lin.bias is None
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(net(x), torch.einsum("nchw,ow->ncho", x, lin.weight))


def test_conv2d_valid_matches_f_conv2d() -> None:
    layer = single({"conv2d": 4, "kernel": [3, 2], "stride": [1, 2], "activation": "relu"}, [2, 7, 8])
    x = torch.randn(2, 2, 7, 8)
    ref = F.relu(F.conv2d(x, layer.conv.weight, layer.conv.bias, stride=(1, 2)))
    torch.testing.assert_close(layer(x), ref)


def test_conv2d_same_stride1_odd_kernel_is_symmetric_padding() -> None:
    layer = single({"conv2d": 3, "kernel": 3, "padding": "same"}, [2, 6, 6])
    x = torch.randn(1, 2, 6, 6)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad_hw", "out"),
    [
        # TensorFlow 'same': out = ceil(size / stride), the odd padding pixel goes right/bottom.
        (6, 3, 2, (0, 1), 3),
        (5, 4, 1, (1, 2), 5),
        (7, 3, 3, (1, 1), 3),
    ],
)
def test_conv2d_same_matches_explicit_tensorflow_padding(
    size: int, kernel: int, stride: int, pad_hw: tuple, out: int
) -> None:
    net = build([{"conv2d": 2, "kernel": kernel, "stride": stride, "padding": "same"}], [1, size, size])
    conv = net.layers[0].conv
    x = torch.randn(2, 1, size, size)
    left, right = pad_hw
    ref = F.conv2d(F.pad(x, (left, right, left, right)), conv.weight, conv.bias, stride=stride)
    assert net.output_shape == (2, out, out)
    torch.testing.assert_close(net(x), ref)


def test_conv1d_with_dilation_and_int_padding_matches_f_conv1d() -> None:
    layer = single({"conv1d": 3, "kernel": 3, "dilation": 2, "padding": 1}, [2, 10])
    x = torch.randn(2, 2, 10)
    ref = F.conv1d(x, layer.conv.weight, layer.conv.bias, padding=1, dilation=2)
    torch.testing.assert_close(layer(x), ref)


def test_conv_without_bias() -> None:
    layer = single({"conv2d": 3, "use_bias": False}, [1, 5, 5])
    assert layer.conv.bias is None


@pytest.mark.parametrize(
    ("layer", "reference"),
    [
        ({"maxpool2d": 2}, lambda x: F.max_pool2d(x, 2)),
        ({"maxpool2d": 3, "stride": 1}, lambda x: F.max_pool2d(x, 3, 1)),
        ({"avgpool2d": [2, 3]}, lambda x: F.avg_pool2d(x, (2, 3))),
        ({"maxpool2d": 3, "stride": 1, "padding": "same"}, lambda x: F.max_pool2d(x, 3, 1, padding=1)),
        (
            {"avgpool2d": 3, "stride": 1, "padding": "same"},
            lambda x: F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False),
        ),
        # 'same' on 7 with pool 2, stride 2: TF pads (0, 1); ceil_mode clips the last window the same way.
        ({"maxpool2d": 2, "padding": "same"}, lambda x: F.max_pool2d(x, 2, 2, ceil_mode=True)),
        ({"avgpool2d": 2, "padding": "same"}, lambda x: F.avg_pool2d(x, 2, 2, ceil_mode=True)),
        (
            {"avgpool2d": 3, "stride": 2, "padding": 1},
            lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False),
        ),
        ({"max_pooling2d": 2}, lambda x: F.max_pool2d(x, 2)),
        ({"maxpool": 2}, lambda x: F.max_pool2d(x, 2)),
    ],
)
def test_pool2d_matches_torch(layer: dict, reference) -> None:
    net = build([layer], [2, 7, 7])
    x = torch.randn(2, 2, 7, 7)
    y = net(x)
    torch.testing.assert_close(y, reference(x))
    assert tuple(y.shape[1:]) == net.output_shape


@pytest.mark.parametrize(
    ("layer", "reference"),
    [
        ({"maxpool1d": 2}, lambda x: F.max_pool1d(x, 2)),
        ({"avgpool1d": 3, "stride": 2}, lambda x: F.avg_pool1d(x, 3, 2)),
        ({"avgpool": 2, "padding": "same"}, lambda x: F.avg_pool1d(x, 2, 2, ceil_mode=True)),
        ({"MaxPooling1D": 2}, lambda x: F.max_pool1d(x, 2)),
    ],
)
def test_pool1d_matches_torch(layer: dict, reference) -> None:
    net = build([layer], [3, 9])
    x = torch.randn(2, 3, 9)
    torch.testing.assert_close(net(x), reference(x))


@pytest.mark.parametrize(("name", "reduce"), [("global_avg_pool", torch.mean), ("GlobalMaxPooling2D", torch.amax)])
def test_global_pools_reduce_spatial_axes(name: str, reduce) -> None:
    net = build([name], [3, 4, 5])
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(net(x), reduce(x, dim=(2, 3)))
    assert net.output_shape == (3,)
    net1d = build(["global_avg_pool1d"], [3, 6])
    x1 = torch.randn(2, 3, 6)
    torch.testing.assert_close(net1d(x1), x1.mean(dim=2))


def test_flatten_and_reshape_match_torch_reshape() -> None:
    net = build(["flatten", {"reshape": [4, -1]}], [2, 3, 4])
    x = torch.randn(5, 2, 3, 4)
    assert net.output_shape == (4, 6)
    torch.testing.assert_close(net(x), x.reshape(5, 4, 6))


def test_dropout_is_identity_in_eval_and_scales_in_training() -> None:
    layer = single({"dropout": 0.25}, [20000])
    x = torch.ones(1, 20000)
    layer.eval()
    torch.testing.assert_close(layer(x), x)
    layer.train()
    y = layer(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.02
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))


@pytest.mark.parametrize(
    ("shape", "cls"), [([6], nn.BatchNorm1d), ([3, 5], nn.BatchNorm1d), ([3, 4, 4], nn.BatchNorm2d)]
)
def test_batchnorm_picks_dimension_and_matches_f_batch_norm(shape: list[int], cls: type) -> None:
    layer = single({"batchnorm": {"momentum": 0.2, "eps": 1e-3}}, shape)
    assert isinstance(layer, cls) and layer.num_features == shape[0]
    x = torch.randn(8, *shape) * 3 + 1
    running_mean, running_var = torch.zeros(shape[0]), torch.ones(shape[0])
    ref = F.batch_norm(x, running_mean, running_var, training=True, momentum=0.2, eps=1e-3)
    torch.testing.assert_close(layer(x), ref)
    torch.testing.assert_close(layer.running_mean, running_mean)


def test_layernorm_normalises_last_axis() -> None:
    layer = single({"layernorm": {"eps": 1e-3}}, [3, 7])
    x = torch.randn(2, 3, 7)
    torch.testing.assert_close(layer(x), F.layer_norm(x, (7,), eps=1e-3))


def test_embedding_matches_f_embedding() -> None:
    net = build([{"embedding": 11, "dim": 4}, {"dense": 2}], [5])
    assert net.input_dtype == torch.int64
    assert net.records[0].output_shape == (5, 4)
    ids = torch.randint(0, 11, (3, 5))
    emb = net.layers[0]
    torch.testing.assert_close(emb(ids), F.embedding(ids, emb.weight))
    assert tuple(net(ids).shape) == (3, 5, 2)


@pytest.mark.parametrize(
    "name", ["relu", "tanh", "sigmoid", "gelu", "softmax", "elu", "selu", "silu", "softplus", "leaky_relu"]
)
def test_bare_and_activation_layers_match_reference(name: str) -> None:
    x = torch.randn(3, 6)
    torch.testing.assert_close(single(name, [6])(x), REFERENCE[name](x))
    torch.testing.assert_close(single({"activation": name}, [6])(x), REFERENCE[name](x))


def test_leaky_relu_slope_as_primary_and_identity_layer() -> None:
    x = torch.randn(3, 6)
    torch.testing.assert_close(single({"leaky_relu": 0.2}, [6])(x), F.leaky_relu(x, 0.2))
    torch.testing.assert_close(single("identity", [6])(x), x)
    torch.testing.assert_close(single({"activation": "none"}, [6])(x), x)


def test_softmax_layer_normalises_channels_of_images() -> None:
    y = single("softmax", [4, 3, 3])(torch.randn(2, 4, 3, 3))
    torch.testing.assert_close(y.sum(dim=1), torch.ones(2, 3, 3))


@pytest.mark.parametrize(
    ("layers", "input_shape"),
    [
        ([{"dense": 7}], [3]),
        ([{"dense": 7, "activation": "softmax"}], [2, 3]),
        ([{"conv2d": 4, "kernel": 3}], [2, 9, 8]),
        ([{"conv2d": 4, "kernel": [3, 2], "stride": 2, "padding": "same", "dilation": [1, 2]}], [2, 9, 8]),
        ([{"conv2d": 4, "kernel": 5, "stride": [2, 3], "padding": [2, 1]}], [1, 11, 10]),
        ([{"conv1d": 4, "kernel": 4, "stride": 3, "padding": "same"}], [2, 10]),
        ([{"conv1d": 4, "kernel": 3, "dilation": 3}], [2, 10]),
        ([{"maxpool2d": 3, "stride": 2, "padding": "same"}], [2, 8, 9]),
        ([{"avgpool2d": [2, 3], "stride": [1, 2], "padding": [1, 1]}], [2, 8, 9]),
        ([{"avgpool1d": 4, "stride": 3, "padding": "same"}], [2, 11]),
        ([{"maxpool": 2}], [2, 11]),
        (["global_max_pool"], [2, 5, 6]),
        (["flatten"], [2, 5, 6]),
        ([{"reshape": [-1, 3]}], [2, 3, 3]),
        ([{"dropout": 0.1}], [4, 4]),
        (["batchnorm"], [3, 4, 4]),
        (["layernorm"], [3, 5]),
        ([{"embedding": 9, "dim": 3}], [6]),
        (["softmax"], [5]),
        ([{"leaky_relu": 0.1}], [5]),
        ([{"conv2d": 3}, {"dense": 2}], [1, 6, 6]),
        ([{"embedding": 9, "dim": 4, "pad": 0}, "position_embedding", {"attention": 2}, {"token_pool": "cls"}], [6]),
        ([{"embedding": 9, "dim": 8, "pad": 0}, {"transformer": 2, "heads": 4}, {"token_pool": "attention"}], [5]),
        ([{"embedding": 9, "dim": 3, "pad": 0}, {"lstm": 4, "bidirectional": True, "output": "sequence"}], [5]),
        ([{"gru": 5, "layers": 2, "bidirectional": True}], [7, 3]),
        ([{"position_embedding": "sinusoidal", "max_length": 12}, {"token_pool": "max"}], [7, 3]),
    ],
)
def test_inferred_shapes_equal_real_forward_shapes(layers: list, input_shape: list[int]) -> None:
    net = build(layers, input_shape)
    x = torch.randint(0, 9, (2, *input_shape)) if net.input_dtype == torch.int64 else torch.randn(2, *input_shape)
    y = x
    for record, module in zip(net.records, net.layers):
        y = module(y)
        assert tuple(y.shape[1:]) == record.output_shape, record
    assert tuple(net(x).shape[1:]) == net.output_shape


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Dense", "dense"),
        ("Conv2D", "conv2d"),
        ("MaxPooling2D", "maxpool2d"),
        ("AveragePooling1D", "avgpool1d"),
        ("GlobalAveragePooling2D", "global_avg_pool"),
        ("BatchNormalization", "batchnorm"),
        ("LayerNorm", "layernorm"),
        ("swish", "silu"),
        ("Linear", "dense"),
        ("MultiHeadAttention", "attention"),
        ("TransformerEncoderLayer", "transformer"),
        ("LSTM", "lstm"),
        ("GRU", "gru"),
    ],
)
def test_keras_and_torch_style_aliases(raw: str, canonical: str) -> None:
    assert LAYERS.canonical(raw) == canonical


def test_activation_option_beside_primary_is_not_a_second_layer() -> None:
    spec = ModelSpec.model_validate(
        {"input": [4], "layers": [{"dense": 3, "activation": "relu"}, {"activation": "tanh"}]}
    )
    assert [layer.type for layer in spec.layers] == ["dense", "activation"]
    assert spec.layers[0]["activation"] == "relu"
    assert spec.layers[1]["activation"] == "tanh"


def test_options_are_stored_canonically_and_round_trip() -> None:
    raw = {
        "input": [1, 8, 8],
        "layers": [{"conv2d": 2, "kernel": [3, 3], "activation": "Swish", "init": {"glorot": 2.0}}],
    }
    spec = ModelSpec.model_validate(raw)
    options = spec.model_dump(mode="json")["layers"][0]["options"]
    assert options["activation"] == "silu"
    assert options["init"] == {"type": "xavier", "options": {"gain": 2.0}}
    assert ModelSpec.model_validate(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(
    ("layer", "field", "fragment"),
    [
        ({"dense": 3, "activation": "relux"}, "model.layers[0].activation", "did you mean 'relu'"),
        ({"activation": "softmaxx"}, "model.layers[0].activation", "did you mean 'softmax'"),
        ({"dense": 3, "init": "xavir"}, "model.layers[0].init", "did you mean 'xavier'"),
        ({"dense": 3, "bias_init": "he"}, "model.layers[0].bias_init", "received 'he'"),
        ({"dense": 3, "init": {"normal": -1}}, "model.layers[0].init", "std"),
        ({"conv2d": 3, "padding": "full"}, "model.layers[0].padding", "received 'full'"),
        ({"conv2d": 3, "kernel": 0}, "model.layers[0].kernel", "received 0"),
        ({"dropout": 1.0}, "model.layers[0].rate", "< 1,"),
        ({"reshape": [-1, -1]}, "model.layers[0].shape", "at most one -1"),
        ({"maxpool2d": 2, "padding": 2}, "model.layers[0]", "half the pool size"),
        ("densse", "model.layers[0]", "did you mean 'dense'"),
    ],
)
def test_bad_options_raise_spec_error_naming_the_field(layer: object, field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        ModelSpec.model_validate({"input": [4], "layers": [layer]})
    assert info.value.field == field
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_conv_kernel_larger_than_input_is_a_shape_error() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"conv2d": 2, "kernel": 3}, {"conv2d": 2, "kernel": 7}], [1, 7, 7])
    assert info.value.field == "model.layers[1].kernel"
    assert "5x5" in str(info.value) and "[2, 5, 5]" in str(info.value) and "7x7" in str(info.value)


def test_rank_mismatch_names_layer_and_shape_and_suggests_reshape() -> None:
    with pytest.raises(ShapeError, match=r"model\.layers\[0\].*conv2d.*\[C, H, W\].*\[784\].*reshape"):
        build([{"conv2d": 2}], [784])
    with pytest.raises(ShapeError, match=r"model\.layers\[1\].*maxpool2d.*\[8\]"):
        build([{"dense": 8}, "maxpool2d"], [4])


def test_pool_bigger_than_input_and_pair_on_1d_input_are_shape_errors() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"maxpool2d": 5}], [1, 4, 4])
    assert info.value.field == "model.layers[0].pool"
    with pytest.raises(ShapeError) as info:
        build([{"maxpool": [2, 2]}], [1, 8])
    assert info.value.field == "model.layers[0].pool"


def test_reshape_to_wrong_size_is_a_shape_error() -> None:
    with pytest.raises(ShapeError) as info:
        build([{"reshape": [1, 27, 28]}], [784])
    assert info.value.field == "model.layers[0].shape"
    assert "784" in str(info.value) and "[1, 27, 28]" in str(info.value)
    with pytest.raises(ShapeError):
        build([{"reshape": [5, -1]}], [784])


def test_layer_registry_lists_every_required_layer() -> None:
    required = {
        "dense", "conv1d", "conv2d", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "global_avg_pool",
        "global_max_pool", "flatten", "reshape", "dropout", "batchnorm", "layernorm", "embedding", "activation",
        "relu", "softmax", "tanh", "sigmoid", "gelu", "leaky_relu",
        "position_embedding", "attention", "transformer", "token_pool", "lstm", "gru",
    }  # fmt: skip
    assert required <= set(LAYERS.names())
