"""int8 quantization of a Network's layers, and the same structure rebuilt at load time.

Dense networks get *dynamic* quantization (int8 weights; activations quantized per batch
on the fly, so no calibration data is needed). Networks with convolutions get *static*
quantization through FX graph mode: observers record activation ranges on calibration
batches, then convolutions, dense layers, pooling and batch norm run on int8 tensors.

``torch.ao.quantization`` is deprecated upstream in favour of torchao but is still the
implementation inside torch 2.13 (torchao targets GPUs); its deprecation warnings are
silenced here, in one place, so a torch that drops it fails with one clear error.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from modelyard.errors import InputError

__all__ = [
    "ENGINE",
    "choose_mode",
    "is_quantized",
    "quantize_network",
    "rebuild_quantized",
    "stored_parameter_count",
    "prepare_static",
    "quiet_quantization_warnings",
]

# x86 = fbgemm + onednn kernels; its default qconfig uses reduce_range for activations
# (7-bit), which avoids overflow in the VNNI-less int8 dot products.
ENGINE = "x86"
_CONV = (nn.Conv1d, nn.Conv2d)


@contextlib.contextmanager
def quiet_quantization_warnings() -> Iterator[None]:
    """torch.ao's deprecation and observer warnings off (pytest turns warnings into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # "must run observer before calculate_qparams" on rebuild
        yield


def _engine(name: str) -> None:
    supported = torch.backends.quantized.supported_engines
    if name not in supported:
        name = "qnnpack" if "qnnpack" in supported else supported[-1]
    torch.backends.quantized.engine = name


def is_quantized(network: nn.Module) -> bool:
    """True when any submodule runs on quantized tensors."""
    return any(
        type(m).__module__.startswith("torch.ao.nn.quantized")
        or type(m).__module__.startswith("torch.ao.nn.intrinsic.quantized")
        for m in network.modules()
    )


def stored_parameter_count(module: nn.Module) -> int:
    """Weights and biases a module stores, int8 ones included.

    Quantized layers keep their weights in packed params, not ``nn.Parameter``s, so
    ``parameters()`` misses them; their ``weight()``/``bias()`` unpack them. Batch norms that
    static quantization folded into the convolution before them are gone, so they count no more.
    """
    total = 0
    for m in module.modules():
        total += sum(p.numel() for p in m.parameters(recurse=False))
        if type(m).__module__.startswith("torch.ao.nn") and callable(getattr(m, "weight", None)):
            bias = m.bias() if callable(getattr(m, "bias", None)) else None
            total += m.weight().numel() + (bias.numel() if bias is not None else 0)
    return total


def choose_mode(network: nn.Module, ref: str) -> str:
    """``static`` for networks with convolutions, ``dynamic`` for dense ones; else InputError."""
    if is_quantized(network):
        raise InputError(
            f"Cannot quantize model {ref}: it is already quantized to int8; quantize its float parent instead",
            field="ref",
        )
    kinds = {type(m).__name__ for m in network.modules() if len(list(m.children())) == 0}
    if getattr(network, "input_dtype", torch.float32) != torch.float32 and any(
        isinstance(m, _CONV) for m in network.modules()
    ):
        raise InputError(
            f"Cannot quantize model {ref} to int8: static quantization needs float inputs, the model takes token ids",
            field="--quantize",
        )
    if any(isinstance(m, _CONV) for m in network.modules()):
        return "static"
    if any(isinstance(m, nn.Linear) for m in network.modules()):
        return "dynamic"
    raise InputError(
        f"Cannot quantize model {ref} to int8: expected dense or conv1d/conv2d layers, received only "
        f"{', '.join(sorted(kinds)) or 'no layers'}",
        field="--quantize",
    )


def _static_qconfig() -> Any:
    from torch.ao.quantization import get_default_qconfig_mapping

    return get_default_qconfig_mapping(ENGINE)


def prepare_static(network: nn.Module) -> nn.Module:
    """The network's layers with static int8 observers inserted (FX graph mode, this engine's qconfig)."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    example = torch.zeros((1, *network.input_shape))
    return prepare_fx(network.layers.eval(), _static_qconfig(), (example,))


def quantize_network(
    network: nn.Module, mode: str, calibration: torch.Tensor | None = None, *, batch_size: int = 256
) -> dict[str, Any]:
    """Quantize ``network.layers`` in place; returns what ``rebuild_quantized`` needs."""
    network.eval()
    with quiet_quantization_warnings():
        _engine(ENGINE)
        if mode == "dynamic":
            from torch.ao.quantization import quantize_dynamic

            network.layers = quantize_dynamic(network.layers, {nn.Linear}, dtype=torch.qint8)
        elif mode == "static":
            from torch.ao.quantization.quantize_fx import convert_fx

            if calibration is None or len(calibration) == 0:
                raise InputError(
                    "Static int8 quantization needs calibration samples, received none", field="calibration"
                )
            prepared = prepare_static(network)
            with torch.no_grad():
                for start in range(0, len(calibration), batch_size):
                    prepared(calibration[start : start + batch_size])
            network.layers = convert_fx(prepared)
        else:
            raise InputError(f"Invalid quantization mode {mode!r}: expected 'dynamic' or 'static'", field="mode")
    return {"op": "quantize", "dtype": "int8", "mode": mode, "engine": ENGINE}


def rebuild_quantized(network: nn.Module, step: dict[str, Any]) -> None:
    """Give a freshly built float network the quantized structure of ``step`` (weights follow)."""
    network.eval()
    with quiet_quantization_warnings():
        _engine(str(step.get("engine", ENGINE)))
        if step["mode"] == "dynamic":
            from torch.ao.quantization import quantize_dynamic

            network.layers = quantize_dynamic(network.layers, {nn.Linear}, dtype=torch.qint8)
        elif step["mode"] == "static":
            from torch.ao.quantization.quantize_fx import convert_fx

            # Uncalibrated observers give placeholder qparams; the stored ones replace them.
            network.layers = convert_fx(prepare_static(network))
        else:
            raise ValueError(f"unknown stored quantization mode {step['mode']!r}")
