"""Quantized module state as plain tensors + JSON, so int8 models are stored without pickle.

A quantized module's ``state_dict`` holds quantized tensors, ``torch.dtype`` values,
(weight, bias) tuples of packed parameters and per-module format versions (quantized
modules read their state back differently by version). ``encode`` flattens all of that
into ordinary tensors (the int8 ``int_repr``, per-channel scales and zero points) and a
JSON description (per-tensor scale and zero point as exact Python floats and ints,
dtypes, tuple items, versions); ``decode``/``restore`` build the same values, bit for bit.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

__all__ = ["decode", "encode", "restore"]

_QDTYPES = {"qint8": torch.qint8, "quint8": torch.quint8, "qint32": torch.qint32}
_DTYPES = {**_QDTYPES, "float16": torch.float16, "float32": torch.float32}
_PER_TENSOR = (torch.per_tensor_affine, torch.per_tensor_symmetric)
_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric, torch.per_channel_affine_float_qparams)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _encode_value(key: str, value: Any, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    if isinstance(value, torch.Tensor) and value.is_quantized:
        scheme = value.qscheme()
        entry: dict[str, Any] = {"kind": "qtensor", "dtype": _dtype_name(value.dtype)}
        tensors[f"{key}.int_repr"] = value.int_repr().contiguous()
        if scheme in _PER_TENSOR:
            # float() of a double is exact, and JSON writes floats with repr (round-trips).
            entry.update(scheme="per_tensor", scale=float(value.q_scale()), zero_point=int(value.q_zero_point()))
        elif scheme in _PER_CHANNEL:
            entry.update(scheme="per_channel", axis=int(value.q_per_channel_axis()))
            tensors[f"{key}.scales"] = value.q_per_channel_scales().contiguous()
            tensors[f"{key}.zero_points"] = value.q_per_channel_zero_points().contiguous()
        else:  # pragma: no cover - torch has no other schemes today
            raise ValueError(f"unsupported quantization scheme {scheme} for {key}")
        return entry
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().contiguous()
        return {"kind": "tensor"}
    if isinstance(value, torch.dtype):
        return {"kind": "dtype", "value": _dtype_name(value)}
    if value is None:
        return {"kind": "none"}
    if isinstance(value, (tuple, list)):
        return {"kind": "tuple", "items": [_encode_value(f"{key}.{i}", v, tensors) for i, v in enumerate(value)]}
    if isinstance(value, (bool, int, float)):
        return {"kind": "number", "value": value}
    raise ValueError(f"cannot store state entry {key!r} of type {type(value).__name__}")


def encode(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors for safetensors, JSON description)`` of ``module``'s whole state."""
    tensors: dict[str, torch.Tensor] = {}
    raw = module.state_dict()
    state = {k: _encode_value(k, v, tensors) for k, v in raw.items()}
    versions = {k: v["version"] for k, v in getattr(raw, "_metadata", {}).items() if "version" in v}
    return tensors, {"state": state, "versions": versions}


def _decode_value(key: str, entry: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    kind = entry["kind"]
    if kind == "qtensor":
        ints = tensors[f"{key}.int_repr"]
        if entry["scheme"] == "per_tensor":
            q = torch._make_per_tensor_quantized_tensor(ints, entry["scale"], entry["zero_point"])
        else:
            q = torch._make_per_channel_quantized_tensor(
                ints, tensors[f"{key}.scales"], tensors[f"{key}.zero_points"], entry["axis"]
            )
        if q.dtype != _QDTYPES[entry["dtype"]]:  # _make_* infers the dtype from the int dtype
            raise ValueError(f"stored {key} decodes to {q.dtype}, expected {entry['dtype']}")
        return q
    if kind == "tensor":
        return tensors[key]
    if kind == "dtype":
        return _DTYPES[entry["value"]]
    if kind == "none":
        return None
    if kind == "tuple":
        return tuple(_decode_value(f"{key}.{i}", item, tensors) for i, item in enumerate(entry["items"]))
    if kind == "number":
        return entry["value"]
    raise ValueError(f"unknown stored state kind {kind!r} for {key}")


def decode(tensors: dict[str, torch.Tensor], description: dict[str, Any]) -> OrderedDict[str, Any]:
    """The state_dict (with its version metadata) as ``encode`` found it."""
    with warnings.catch_warnings():  # torch 2.13 marks quantized tensor creation deprecated (torchao)
        warnings.simplefilter("ignore", UserWarning)
        state: OrderedDict[str, Any] = OrderedDict(
            (k, _decode_value(k, e, tensors)) for k, e in description.get("state", {}).items()
        )
    state._metadata = OrderedDict(  # type: ignore[attr-defined]
        (k, {"version": v}) for k, v in description.get("versions", {}).items()
    )
    return state


def restore(module: nn.Module, tensors: dict[str, torch.Tensor], description: dict[str, Any]) -> None:
    """Load an ``encode``d state into a module of the same quantized structure (strict)."""
    module.load_state_dict(decode(tensors, description), strict=True)
