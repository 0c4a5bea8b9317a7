"""A float network that computes with an int8 network's weights, dequantized: what gradients can run through.

torch's int8 kernels (``quantized::linear_dynamic``, the static int8 convolutions) have no
autograd formulas, so gradient methods (integrated gradients, saliency) cannot differentiate an
int8 version. They run on this float twin instead: the same layers, each int8 weight replaced by
its dequantized value (``int8 × scale``, exactly what the int8 kernel multiplies by), biases and
every other parameter copied. What differs from the int8 model is only the activation rounding
(per batch for dynamic, calibrated for static quantization), so its outputs are close to the int8
model's but not identical; callers report the largest difference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modelyard.compression.quantize import is_quantized, prepare_static, quiet_quantization_warnings

__all__ = ["dequantized_network"]


def _int8_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.ao.nn") and callable(getattr(module, "weight", None))


def _float_target(module: nn.Module) -> nn.Module:
    """The module holding the float weight: fused intrinsic modules (ConvReLU2d, LinearReLU) hold it in [0]."""
    if isinstance(getattr(module, "weight", None), torch.Tensor):
        return module
    return module[0]  # type: ignore[index]


def dequantized_network(quantized: Any, fresh: Any, mode: str) -> Any:
    """``fresh`` (a float network built from the same spec) given ``quantized``'s weights, dequantized.

    ``mode`` is the stored quantization mode: ``dynamic`` keeps the module names of the float
    layers; ``static`` (FX graph mode) fused and renamed them, so ``fresh`` goes through the same
    preparation first (its observers pass values through unchanged) and the names match again.
    """
    if not is_quantized(quantized):
        raise ValueError("dequantized_network needs an int8 network")
    fresh.eval()
    if mode == "static":
        with quiet_quantization_warnings():
            fresh.layers = prepare_static(fresh)
    targets = dict(fresh.layers.named_modules())
    with torch.no_grad():
        for name, module in quantized.layers.named_modules():
            target = targets.get(name)
            if target is None:
                continue
            if _int8_module(module):
                dest = _float_target(target)
                dest.weight.copy_(module.weight().dequantize())
                bias = module.bias() if callable(getattr(module, "bias", None)) else None
                if bias is not None:
                    dest.bias.copy_(bias)
                continue
            for key, value in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                own = getattr(target, key, None)
                if isinstance(own, torch.Tensor) and own.shape == value.shape:
                    own.copy_(value)
    return fresh.requires_grad_(False).eval()
