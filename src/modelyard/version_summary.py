"""What `modelyard models show` says about a version, computed from its network once, at registration.

``summarize`` (torch) describes a built network: its input/output schema, the parameters it
stores (int8 weights included) and one row per spec layer. Every registration path (training,
compression, export) stores that as the version's ``summary.json``, so ``show`` answers from the
store alone and never imports torch. A version registered before summaries existed has none:
``show`` then rebuilds its network once per call (the old path, slow but exact) and stores nothing,
since a version folder is never changed after registration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelyard.nn import Network
    from modelyard.spec import Spec
    from modelyard.store import ModelVersion

__all__ = ["FORMAT", "class_names", "model_schema", "summarize", "show"]

FORMAT = 1


def class_names(meta: Mapping[str, Any]) -> list[str] | None:
    """The label names a classifier's preprocessing recorded, else ``"0"``..``"N-1"``; None for regression."""
    names = meta.get("class_names")
    if names is None and meta.get("num_classes"):
        names = [str(i) for i in range(int(meta["num_classes"]))]
    return names


def model_schema(network: Network, spec: Spec, meta: Mapping[str, Any], input_shape: Sequence[int]) -> dict[str, Any]:
    """Input/output description (without the ref): `models show`, the server's model listing."""
    import torch

    return {
        "task": meta.get("task") or spec.task,
        "input_shape": list(input_shape),
        "input_dtype": "int64" if network.input_dtype == torch.int64 else "float32",
        "feature_names": meta.get("feature_names"),
        "class_names": class_names(meta),
        "output_shape": list(network.output_shape),
    }


def layer_rows(network: Network, spec: Spec) -> list[dict[str, Any]]:
    """``describe`` rows with stored parameter counts, int8 layers included.

    A statically quantized network's layers are an FX graph module (not a sequence): the rows
    come from the float network of the same spec and the counts from the int8 modules by index
    (a batch norm folded into its convolution counts there, so 0 on its own row).
    """
    from modelyard.compression.quantize import is_quantized, stored_parameter_count
    from modelyard.nn import build_model, describe

    if not is_quantized(network):
        return describe(network)
    rows = describe(build_model(spec.model, loss=spec.train.loss.type))
    children = dict(network.layers.named_children())
    for row in rows:
        module = children.get(str(row["index"]))
        row["params"] = stored_parameter_count(module) if module is not None else 0
    return rows


def summarize(network: Network, spec: Spec, meta: Mapping[str, Any], input_shape: Sequence[int]) -> dict[str, Any]:
    """The JSON stored as a version's ``summary.json``: schema, stored parameter count, layer rows."""
    from modelyard.compression.quantize import stored_parameter_count

    return {
        "format": FORMAT,
        "schema": model_schema(network, spec, meta, input_shape),
        # Counts int8 weights too (quantized layers keep them outside `parameters()`).
        "parameters": stored_parameter_count(network),
        "layers": layer_rows(network, spec),
    }


def show(version: ModelVersion) -> dict[str, Any]:
    """``version``'s summary: the stored one, or (a version from before summaries) computed from its network."""
    stored = version.load_summary()
    if stored is not None and stored.get("format") == FORMAT:
        return stored
    from modelyard.predict import Predictor

    p = Predictor.from_version(version)
    return summarize(p.network, p.spec, p.meta, p.input_shape)
