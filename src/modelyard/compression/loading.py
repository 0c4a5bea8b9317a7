"""Rebuild a stored model's network: spec → float network → stored transform → weights.

A version made by ``modelyard compress --quantize`` holds ``compression.json`` beside its
weights. It says which transform to apply to the freshly built float network (the same
``quantize_dynamic`` / FX static conversion that made it) and how the quantized tensors
were flattened into safetensors. Pruned and distilled versions need nothing: their spec
already describes the (smaller) network and their weights are ordinary tensors. No code
is loaded from the store in either case: only JSON and safetensors are read.
"""

from __future__ import annotations

import json
from typing import Any

from modelyard.errors import StoreError
from modelyard.nn import Network
from modelyard.store import ModelVersion

__all__ = ["COMPRESSION_FILE", "compression_info", "restore_weights"]

COMPRESSION_FILE = "compression.json"
FORMAT = 1


def compression_info(version: ModelVersion) -> dict[str, Any] | None:
    """The version's ``compression.json``, or None for an ordinary version."""
    path = version.path / COMPRESSION_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"Compression description of model {version.ref} is unreadable ({path}): {exc}", field=COMPRESSION_FILE) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise StoreError(f"Compression description of model {version.ref} has format {info.get('format') if isinstance(info, dict) else None!r}; "
                         f"this modelyard reads format {FORMAT}", field=COMPRESSION_FILE)
    return info


def restore_weights(network: Network, version: ModelVersion) -> None:
    """Load ``version``'s weights into ``network`` (built from its spec), applying its transform first."""
    info = compression_info(version)
    quantized = (info or {}).get("quantization")
    if not quantized:
        network.load_state_dict(version.load_state_dict(), strict=True)
        return
    from modelyard.compression import qtensors
    from modelyard.compression.quantize import rebuild_quantized

    rebuild_quantized(network, quantized)
    try:
        qtensors.restore(network, version.load_state_dict(), quantized["state"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise StoreError(f"Quantized weights of model {version.ref} do not fit its compression description: {exc}", field="weights") from None
