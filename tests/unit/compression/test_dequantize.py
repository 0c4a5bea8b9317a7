"""The dequantized float twin of an int8 network: its weights are the int8 ones dequantized, its outputs close."""

from __future__ import annotations

import pytest
import torch

from modelyard.compression.dequantize import dequantized_network
from modelyard.compression.quantize import quantize_network
from modelyard.nn import build_model
from tests.support.compression import CONV, DENSE


def _int8_weights(network: torch.nn.Module) -> list[torch.Tensor]:
    mods = [m for m in network.modules() if "quantized" in type(m).__module__ and callable(getattr(m, "weight", None))]
    return [m.weight().dequantize() for m in mods]


@pytest.mark.parametrize(("spec", "mode"), [(DENSE, "dynamic"), (CONV, "static")])
def test_the_twin_holds_the_dequantized_int8_weights_and_follows_the_int8_model(spec: dict, mode: str) -> None:
    torch.manual_seed(0)
    network = build_model(spec, loss="cross_entropy").eval()
    x = torch.randn(64, *network.input_shape, generator=torch.Generator().manual_seed(1))
    quantize_network(network, mode, x if mode == "static" else None)
    torch.manual_seed(7)  # the fresh network starts from other weights: all of them must be replaced
    twin = dequantized_network(network, build_model(spec, loss="cross_entropy"), mode)

    want = _int8_weights(network)
    got = [m.weight for m in twin.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    assert len(got) == len(want) > 0
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    with torch.no_grad():
        int8 = network.probabilities(network(x))
        plain = twin.probabilities(twin(x))
    assert (plain - int8).abs().max() < 0.05  # only the activation rounding differs
    assert (plain.argmax(1) == int8.argmax(1)).float().mean() >= 0.9

    z = x[:2].clone().requires_grad_(True)  # gradients flow through the twin, not through int8 kernels
    twin.probabilities(twin(z))[:, 0].sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_a_float_network_is_refused() -> None:
    network = build_model(DENSE, loss="cross_entropy")
    with pytest.raises(ValueError, match="int8"):
        dequantized_network(network, build_model(DENSE, loss="cross_entropy"), "dynamic")
