"""``build_model``: a spec's ``model:`` section → a ``Network``.

Shapes are inferred layer by layer arithmetically (no tensor is run), so a bad spec
fails with a ShapeError naming ``model.layers[i]`` before anything is allocated.
The build is pure: the same spec and the same ``torch.manual_seed`` give the same
initial weights, which is how a stored model is rebuilt for prediction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError
from torch import nn

from modelyard._validation import spec_error_from
from modelyard.errors import ResourceError, ShapeError, SpecError
from modelyard.nn.layers import LAYERS
from modelyard.nn.layers._common import fmt_shape
from modelyard.nn.masking import any_length, mask_plan, pad_id_of
from modelyard.nn.memory import check_fits
from modelyard.nn.network import LayerRecord, Network, OutputActivation
from modelyard.registry import normalize_name

if TYPE_CHECKING:
    from modelyard.spec import ModelSpec

__all__ = ["build_model", "spec_parameters"]

# Losses that take logits: a final activation of this kind is left to the loss and to
# Network.probabilities (log-softmax inside cross-entropy is stable, softmax then log is not).
FOLDED: dict[str, tuple[OutputActivation, type[nn.Module]]] = {
    "cross_entropy": ("softmax", nn.Softmax),
    "binary_cross_entropy": ("sigmoid", nn.Sigmoid),
}


# Layers that read integer token ids, which only the model input provides.
_READS_IDS = ("embedding", "pretrained")


def _as_model_spec(model_spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
    from modelyard.spec import ModelSpec

    if isinstance(model_spec, ModelSpec):
        return model_spec
    if isinstance(model_spec, Mapping):
        try:
            return ModelSpec.model_validate(dict(model_spec))
        except ValidationError as exc:
            raise spec_error_from(exc, "model") from None
    raise SpecError(
        f"Invalid value for `model`: expected a mapping with input and layers, received {type(model_spec).__name__}",
        field="model",
    )


def _strip_final(module: nn.Module, kind: type[nn.Module]) -> nn.Module:
    """``module`` without a trailing activation of type ``kind`` (a bare one or a layer's own)."""
    if isinstance(module, kind):
        return nn.Identity()
    if isinstance(module, nn.Sequential) and isinstance(getattr(module, "activation", None), kind):
        del module.activation
    return module


def spec_parameters(model_spec: ModelSpec | Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(field, parameters, bytes per parameter) of each layer, from a build on the ``meta`` device
    (shapes only: nothing is allocated, however large the layers)."""
    with torch.device("meta"):
        network = _build(_as_model_spec(model_spec), loss=None)
    counts = []
    for record, module in zip(network.records, network.layers):
        params = list(module.parameters()) + list(module.buffers())
        size = max((p.element_size() for p in params), default=4)
        counts.append((record.field, sum(p.numel() for p in params), size))
    return counts


def build_model(model_spec: ModelSpec | Mapping[str, Any], *, loss: str | None = None) -> Network:
    """Build the network for ``model_spec``; ``loss`` is the canonical loss type
    (``spec.train.loss.type``), used only to fold a final softmax/sigmoid into it.

    Refuses (ResourceError, naming the largest layer) a network whose weights would not fit in
    the memory available, before allocating them."""
    spec = _as_model_spec(model_spec)
    check_fits(spec_parameters(spec))
    return _build(spec, loss=loss)


def _build(spec: ModelSpec, *, loss: str | None) -> Network:
    shape = tuple(spec.input)
    modules: list[nn.Module] = []
    records: list[LayerRecord] = []
    seen: Counter[str] = Counter()
    for i, layer in enumerate(spec.layers):
        field = f"model.layers[{i}]"
        if layer.type in _READS_IDS and i > 0:
            raise ShapeError(
                f"Invalid input for `{field}` ({layer.type}): expected integer token ids, which only the model input "
                f"provides, received the float output of `model.layers[{i - 1}]` (shape {fmt_shape(shape)}); "
                f"make it the first layer",
                field=field,
            )
        try:
            module, shape = LAYERS.build(layer, shape, field)
        except (TypeError, RuntimeError, OverflowError) as exc:
            # A size past 64 bits (e.g. dense: 2**64, or an input that large): torch refuses it with
            # "Overflow when unpacking long long" / "Storage size calculation overflowed"; not a fault.
            if "overflow" not in str(exc).lower():
                raise
            raise ResourceError(
                f"Invalid value for `{field}` ({layer.type}): its weights would have more elements than a "
                f"tensor can hold (input shape {fmt_shape(shape)}); make the layer or its input smaller",
                field=field,
            ) from None
        name = layer.type if not seen[layer.type] else f"{layer.type}_{seen[layer.type]}"
        seen[layer.type] += 1
        modules.append(module)
        records.append(LayerRecord(i, name, layer.type, field, tuple(shape)))

    output_activation: OutputActivation | None = None
    folded = FOLDED.get(normalize_name(loss)) if loss else None
    if folded is not None:
        output_activation, kind = folded
        modules[-1] = _strip_final(modules[-1], kind)

    first_is_embedding = spec.layers[0].type in _READS_IDS
    pad_id = pad_id_of(modules[0])
    return Network(
        modules,
        records,
        input_shape=tuple(spec.input),
        input_dtype=torch.int64 if first_is_embedding else torch.float32,
        output_activation=output_activation,
        spec=spec,
        pad_id=pad_id,
        takes_mask=mask_plan(modules, pad_id),
        any_length=any_length(modules, pad_id),
    )
