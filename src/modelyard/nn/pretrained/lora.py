"""LoRA adapters on a ``pretrained`` encoder (Hugging Face ``peft``; extra ``modelyard[lora]``).

``lora: {r, alpha, dropout, targets}`` on a ``pretrained`` layer freezes every base weight and
wraps each targeted projection in peft's own ``lora.Linear`` (``peft.inject_adapter_in_model``):
``y = W x + b + (alpha / r) · B A dropout(x)``, with A ``[r, in]`` (Kaiming-uniform) and B
``[out, r]`` (zeros), so at initialisation the layer is exactly the base. Only A, B and the
layers after the encoder (the head) train.

A registered version stores only those trainable tensors (``adapter_state``): the base's are
named by the spec's pinned ``base`` (name, sha256 of model.safetensors, config), and loading
(``restore_adapted``) reads them again from the base, refusing one whose sha256 differs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field, field_validator
from torch import nn

from modelyard._validation import StrictModel
from modelyard.errors import SpecError, StoreError

if TYPE_CHECKING:
    from modelyard.spec import Spec

__all__ = [
    "TARGETS",
    "LoraOptions",
    "add_lora",
    "adapted_layers",
    "base_keys",
    "adapter_state",
    "restore_adapted",
]

# A target's name → the projection it wraps in every encoder block (modelyard's names for BERT's).
TARGETS = {
    "query": "attention.query",
    "key": "attention.key",
    "value": "attention.value",
    "output": "attention.output",
    "mlp_in": "mlp_in",
    "mlp_out": "mlp_out",
}
_ADAPTER = ("lora_A.", "lora_B.")  # peft's parameter names; the base's live under ``base_layer.``


class LoraOptions(StrictModel):
    r: int = Field(8, ge=1, description="the adapters' rank")
    alpha: float = Field(16.0, gt=0.0, description="the update is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapters' input")
    targets: list[str] = Field(["query", "value"], min_length=1)

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"expected a list of projection names, received {value!r}")
        for name in names:
            if name not in TARGETS:
                raise ValueError(f"expected projection names among {', '.join(TARGETS)}, received {name!r}")
        return list(dict.fromkeys(names))


def _peft(field: str) -> Any:
    try:
        import peft
    except ImportError:
        raise SpecError(
            f"Invalid value for `{field}.lora`: LoRA needs Hugging Face peft, which is not installed "
            f"(pip install 'modelyard[lora]')",
            field=f"{field}.lora",
        ) from None
    return peft


def add_lora(encoder: nn.Module, opts: LoraOptions, field: str) -> None:
    """Freeze every weight of ``encoder`` (a ``PretrainedEncoder``) and inject peft's LoRA layers."""
    peft = _peft(field)
    pattern = r"encoder\.blocks\.\d+\.(" + "|".join(re.escape(TARGETS[t]) for t in opts.targets) + ")"
    config = peft.LoraConfig(
        r=opts.r, lora_alpha=opts.alpha, lora_dropout=opts.dropout, target_modules=pattern, bias="none"
    )
    encoder.requires_grad_(False)
    peft.inject_adapter_in_model(config, encoder)  # also leaves only lora_A/lora_B trainable in it


def adapted_layers(spec: Spec) -> list[tuple[int, str, dict[str, Any]]]:
    """(index, field, options) of each ``pretrained`` layer with ``lora``."""
    return [
        (i, f"model.layers[{i}]", dict(layer.options))
        for i, layer in enumerate(spec.model.layers)
        if layer.type == "pretrained" and layer.options.get("lora") is not None
    ]


def _base_names(module: nn.Module) -> Iterator[str]:
    for name, _ in module.named_parameters():
        if not any(part in name for part in _ADAPTER):
            yield name
    for name, _ in module.named_buffers():
        yield name


def base_keys(network: nn.Module, spec: Spec) -> set[str]:
    """The state-dict keys of the adapted layers' base weights (what a version does not store)."""
    return {
        f"layers.{i}.{name}"
        for i, _, _ in adapted_layers(spec)
        for name in _base_names(network.layers[i])  # type: ignore[index]
    }


def adapter_state(network: nn.Module, spec: Spec, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the adapted layers' base weights: the adapters and every other layer."""
    drop = base_keys(network, spec)
    return {k: v for k, v in state.items() if k not in drop}


def restore_adapted(network: nn.Module, spec: Spec, state: Mapping[str, torch.Tensor], ref: str) -> None:
    """Load a stored version into ``network``: the bases from their pinned sources, then ``state``.

    A state holding every tensor (an adapter version saved whole) needs no base."""
    from modelyard.nn.pretrained.pinning import load_bases

    own = set(network.state_dict())
    missing = own - set(state)
    if missing:
        expected = base_keys(network, spec)
        if missing - expected:
            raise StoreError(
                f"Weights of model {ref} lack {sorted(missing - expected)[0]} (an adapter or head tensor)",
                field="weights",
            )
        try:
            load_bases(network, spec, only={i for i, _, _ in adapted_layers(spec)})
        except SpecError as exc:
            raise StoreError(
                f"Model {ref} stores only its LoRA adapter and reads its base's weights when loaded: {exc.message}",
                field=exc.field,
            ) from None
    extra = set(state) - own
    if extra:
        raise StoreError(
            f"Weights of model {ref} hold {sorted(extra)[0]}, which its spec has no place for", field="weights"
        )
    network.load_state_dict({**network.state_dict(), **state}, strict=True)
