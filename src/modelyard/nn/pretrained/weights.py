"""A base's ``model.safetensors`` loaded into a ``pretrained`` layer, tensor by tensor by name.

BERT's names (with or without a ``bert.`` prefix) map one to one onto the layer's parts; the
position table takes the token-type row 0 added in (single-sentence input always has type 0).
A tensor the layer needs but the file lacks, one of the wrong shape or dtype, and one the file
has that nothing reads (another architecture's weights) are each refused in one line naming the
tensor. ``pooler.*`` (BERT's next-sentence head, unused by mean/CLS pooling) and the
``position_ids`` buffer are the only tensors left unread on purpose.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from modelyard.errors import SpecError
from modelyard.nn.pretrained.folder import sha256_of

__all__ = ["tensor_names", "load_weights"]

_IGNORED = ("pooler.", "embeddings.position_ids")
_FLOATS = ("F16", "BF16", "F32", "F64")


def tensor_names(blocks: int) -> dict[str, str]:
    """Our parameter name → BERT's tensor name (the position table is handled apart)."""
    names = {
        "embedding.weight": "embeddings.word_embeddings.weight",
        "norm.weight": "embeddings.LayerNorm.weight",
        "norm.bias": "embeddings.LayerNorm.bias",
    }
    parts = {
        "attention.query": "attention.self.query",
        "attention.key": "attention.self.key",
        "attention.value": "attention.self.value",
        "attention.output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "mlp_in": "intermediate.dense",
        "mlp_out": "output.dense",
        "mlp_norm": "output.LayerNorm",
    }
    for i in range(blocks):
        for ours, theirs in parts.items():
            for kind in ("weight", "bias"):
                names[f"encoder.blocks.{i}.{ours}.{kind}"] = f"encoder.layer.{i}.{theirs}.{kind}"
    return names


def _fail(field: str, path: Path, what: str) -> SpecError:
    return SpecError(f"Invalid value for `{field}`: {path} {what}", field=field)


def load_weights(module: torch.nn.Module, path: Path, field: str, *, sha256: str | None = None) -> None:
    """Copy the base's tensors into ``module`` (a ``PretrainedEncoder``), checking each one.

    ``sha256``: the identity pinned in the spec; a base whose weights changed since is refused."""
    if sha256 is not None and sha256_of(path) != sha256:
        raise _fail(field, path, f"is not the base this spec was pinned to (its sha256 differs from {sha256[:12]}...)")
    blocks = len(module.encoder.blocks)  # type: ignore[union-attr, arg-type]
    want = tensor_names(blocks)
    # A LoRA-adapted projection (peft) keeps the base's weight under ``base_layer``; its adapters read nothing.
    params = {n.replace(".base_layer.", "."): p for n, p in module.named_parameters() if ".lora_" not in n}
    try:
        with safe_open(str(path), framework="pt") as fh:
            keys = set(fh.keys())
            prefix = "bert." if "bert.embeddings.word_embeddings.weight" in keys else ""  # BertFor* checkpoints

            def read(name: str, shape: tuple[int, ...]) -> torch.Tensor:
                key = prefix + name
                if key not in keys:
                    raise _fail(field, path, f"has no tensor {key} (a BERT-style encoder has one)")
                info = fh.get_slice(key)
                if info.get_dtype() not in _FLOATS:
                    raise _fail(field, path, f"tensor {key} has dtype {info.get_dtype()}, expected a float type")
                got = tuple(info.get_shape())
                if got != shape:
                    raise _fail(
                        field, path, f"tensor {key} has shape {list(got)}, expected {list(shape)} (from config.json)"
                    )
                return fh.get_tensor(key).to(torch.float32)

            used = {prefix + name for name in want.values()}
            dim = params["positions.weight"].shape[1]
            positions = read("embeddings.position_embeddings.weight", tuple(params["positions.weight"].shape))
            types = prefix + "embeddings.token_type_embeddings.weight"
            if types in keys:
                rows = tuple(fh.get_slice(types).get_shape())
                positions = positions + read("embeddings.token_type_embeddings.weight", (rows[0], dim))[0]
                used.add(types)
            used.add(prefix + "embeddings.position_embeddings.weight")
            extra = sorted(k for k in keys - used if not k.removeprefix(prefix).startswith(_IGNORED))
            if extra:
                raise _fail(
                    field,
                    path,
                    f"has tensor {extra[0]} that no part of a BERT-style encoder reads"
                    + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                    + "; expected the weights of a BERT-style encoder",
                )
            with torch.no_grad():
                params["positions.weight"].copy_(positions)
                for ours, theirs in want.items():
                    params[ours].copy_(read(theirs, tuple(params[ours].shape)))
    except SafetensorError as exc:
        raise _fail(field, path, f"is not a readable safetensors file ({exc})") from None
