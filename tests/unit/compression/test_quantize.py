"""int8 quantization: stored without pickle, rebuilt bit for bit, equal to plain torch's own."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load, save
from torch import nn

from modelyard.compression import qtensors
from modelyard.compression.quantize import (
    choose_mode,
    is_quantized,
    quantize_network,
    rebuild_quantized,
)
from modelyard.errors import InputError
from modelyard.nn import build_model
from tests.support.compression import CONV, DENSE


def _net(spec: dict, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(spec, loss="cross_entropy").eval()


def _through_disk(module: nn.Module) -> tuple[dict, dict]:
    """encode → safetensors bytes + JSON text → back, as registration and loading do."""
    tensors, description = qtensors.encode(module)
    return load(save(tensors)), json.loads(json.dumps(description))


def test_quantized_tensors_round_trip_exactly_per_tensor_and_per_channel() -> None:
    w = torch.randn(5, 7)
    with warnings.catch_warnings():  # quantized tensor creation is deprecated in torch 2.13 (torchao)
        warnings.simplefilter("ignore")
        per_tensor = torch.quantize_per_tensor(w, 0.0123456789, 3, torch.qint8)
        per_channel = torch.quantize_per_channel(
            w, torch.rand(5, dtype=torch.float64) + 0.01, torch.arange(5), 0, torch.qint8
        )
    holder = nn.Module()
    holder.register_buffer("a", per_tensor)
    holder.register_buffer("b", per_channel)
    tensors, description = _through_disk(holder)
    assert all(not t.is_quantized for t in tensors.values())  # only plain tensors reach safetensors
    state = qtensors.decode(tensors, description)
    for key, want in (("a", per_tensor), ("b", per_channel)):
        got = state[key]
        assert got.dtype == want.dtype and got.qscheme() == want.qscheme()
        assert torch.equal(got.int_repr(), want.int_repr())
    assert state["a"].q_scale() == per_tensor.q_scale() and state["a"].q_zero_point() == 3
    assert torch.equal(state["b"].q_per_channel_scales(), per_channel.q_per_channel_scales())


def test_dynamic_int8_equals_plain_torch_and_round_trips_bit_exactly() -> None:
    net = _net(DENSE)
    x = torch.randn(32, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(*[m for m in _net(DENSE).layers]), {nn.Linear}, dtype=torch.qint8
        )
    assert choose_mode(net, "m:1") == "dynamic"
    step = quantize_network(net, "dynamic")
    assert is_quantized(net)
    with torch.no_grad():
        want = reference(x)
        assert torch.equal(net(x), want)  # the same kernels as torch's own quantize_dynamic
        assert (net(x) - _net(DENSE)(x)).abs().max() < 0.05  # and close to fp32

    rebuilt = _net(DENSE, seed=1)  # other initial weights: everything must come from the stored state
    rebuild_quantized(rebuilt, step)
    qtensors.restore(rebuilt, *_through_disk(net))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


def test_static_int8_for_conv_networks_round_trips_bit_exactly() -> None:
    net = _net(CONV)
    x = torch.randn(64, 1, 10, 10)
    with torch.no_grad():
        fp32 = net(x)
    assert choose_mode(net, "m:1") == "static"
    step = quantize_network(net, "static", x)
    assert any(isinstance(m, torch.ao.nn.quantized.Conv2d) for m in net.modules())
    rebuilt = _net(CONV, seed=2)
    rebuild_quantized(rebuilt, step)
    qtensors.restore(rebuilt, *_through_disk(net))
    with torch.no_grad():
        out = net(x)
        assert torch.equal(rebuilt(x), out)
    # int8 follows the float network: same class on nearly every sample, small differences.
    assert (out.argmax(1) == fp32.argmax(1)).float().mean() >= 0.9
    assert (out - fp32).abs().max() < 0.25 * fp32.abs().max()


def test_static_quantization_without_calibration_is_refused() -> None:
    with pytest.raises(InputError, match="calibration"):
        quantize_network(_net(CONV), "static", None)


def test_int8_on_a_model_without_dense_or_conv_layers_is_one_line_error() -> None:
    net = build_model({"input": [4], "layers": ["layernorm", "relu"]}, loss="mse")
    with pytest.raises(InputError) as err:
        choose_mode(net, "norms:1")
    assert "expected dense or conv1d/conv2d layers" in err.value.message and "LayerNorm" in err.value.message
    assert "\n" not in err.value.message


def test_quantizing_twice_is_refused() -> None:
    net = _net(DENSE)
    quantize_network(net, "dynamic")
    with pytest.raises(InputError, match="already quantized"):
        choose_mode(net, "m:2")
