"""Rebuild a stored model's network: spec → float network → stored transform → weights.

A version made by ``modelyard compress --quantize`` holds ``compression.json`` beside its
weights. It says which transform to apply to the freshly built float network (the same
``quantize_dynamic`` / FX static conversion that made it) and how the quantized tensors
were flattened into safetensors. Pruned and distilled versions need nothing: their spec
already describes the (smaller) network and their weights are ordinary tensors. No code
is loaded from the store in either case: only JSON and safetensors are read.

An int8 version also holds ``model.int8.onnx``, its ONNX Runtime int8 graph, when that graph
passed its check against the torch int8 model at compression time; ``compression.json``
records the check and the file's sha256, so serving uses exactly the graph that was checked.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelyard.errors import ExportError, StoreError
from modelyard.nn import Network
from modelyard.nn.pretrained.lora import adapted_layers, restore_adapted
from modelyard.spec import load_spec
from modelyard.store import ModelVersion

__all__ = [
    "COMPRESSION_FILE",
    "INT8_ONNX_FILE",
    "compression_info",
    "graph_record",
    "restore_weights",
    "stored_int8_graph",
]

COMPRESSION_FILE = "compression.json"
INT8_ONNX_FILE = "model.int8.onnx"
FORMAT = 1


def compression_info(version: ModelVersion) -> dict[str, Any] | None:
    """The version's ``compression.json``, or None for an ordinary version."""
    path = version.file(COMPRESSION_FILE)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"Compression description of model {version.ref} is unreadable ({path}): {exc}", field=COMPRESSION_FILE
        ) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise StoreError(
            f"Compression description of model {version.ref} has format {info.get('format') if isinstance(info, dict) else None!r}; "
            f"this modelyard reads format {FORMAT}",
            field=COMPRESSION_FILE,
        )
    return info


def restore_weights(network: Network, version: ModelVersion) -> None:
    """Load ``version``'s weights into ``network`` (built from its spec), applying its transform first."""
    info = compression_info(version)
    quantized = (info or {}).get("quantization")
    if not quantized:
        spec = load_spec(version.load_spec())
        if adapted_layers(spec):  # LoRA: the version holds the adapters and head, the base is read again
            restore_adapted(network, spec, version.load_state_dict(), version.ref)
        else:
            network.load_state_dict(version.load_state_dict(), strict=True)
        return
    from modelyard.compression import qtensors
    from modelyard.compression.quantize import rebuild_quantized

    rebuild_quantized(network, quantized)
    try:
        qtensors.restore(network, version.load_state_dict(), quantized["state"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise StoreError(
            f"Quantized weights of model {version.ref} do not fit its compression description: {exc}", field="weights"
        ) from None


def graph_record(graph: bytes, *, made_by: str, check: dict[str, Any]) -> dict[str, Any]:
    """The ``onnx`` entry of ``compression.json`` for a stored int8 graph that passed ``check``."""
    return {
        "file": INT8_ONNX_FILE,
        "sha256": hashlib.sha256(graph).hexdigest(),
        "bytes": len(graph),
        "made_by": made_by,
        "check": check,
    }


def stored_int8_graph(version: ModelVersion) -> tuple[bytes, dict[str, Any]]:
    """An int8 version's checked ONNX Runtime graph and its recorded check; ExportError if there is none.

    The file must be the one that was checked (same sha256); a version whose graph failed its
    check, or one made before graphs were stored, has none and serves with torch.
    """
    record = (compression_info(version) or {}).get("onnx") or {}
    if not record.get("file"):
        why = record.get("reason") or "it was compressed before int8 graphs were stored"
        raise ExportError(
            f"Model {version.ref} is quantized to int8 and has no checked ONNX Runtime int8 graph "
            f"({INT8_ONNX_FILE}): {why}"
        )
    path = version.path / record["file"]  # compression.json's own sha256 (below) names the checked graph
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"Cannot read the int8 ONNX graph of model {version.ref} ({path}): {exc}") from None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise ExportError(
            f"The int8 ONNX graph of model {version.ref} ({path}) is not the file that was checked: "
            f"expected sha256 {record.get('sha256')}, received {hashlib.sha256(data).hexdigest()}"
        )
    return data, dict(record.get("check") or {})
