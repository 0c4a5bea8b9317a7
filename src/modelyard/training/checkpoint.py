"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a pair in one folder::

    ckpt-000003-<token>.safetensors   model/…, optimizer/<param>/<key>, best/…, rng/…
    last.json                         epoch, history, optimizer param groups, schedule,
                                      early stopping, … and the name of the tensor file

Each file is written to a temp file in the same folder, flushed, fsync'ed and renamed
over its final name (``os.replace`` is atomic on POSIX and Windows). The tensor file
comes first under a new name; ``last.json`` is replaced last and is the commit point, so
a crash at any moment leaves the previous pair intact and loadable. Leftover temp files
are ignored (and cleaned up by the next save).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from modelyard._files import atomic_write_bytes
from modelyard.errors import TrainingError
from modelyard.training import _json

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "LAST"]

LAST = "last.json"
_FORMAT = "modelyard-checkpoint"
_VERSION = 1


@dataclass
class Checkpoint:
    """Everything needed to continue training exactly where it stopped."""

    epoch: int  # epochs completed
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch optimizer state_dict
    history: list[dict[str, Any]] = field(default_factory=list)
    schedule: dict[str, Any] | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # name → uint8 generator state
    early_stopping: dict[str, Any] | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    scaler: dict[str, Any] | None = None  # GradScaler state (fp16 on CUDA)
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able odds and ends (seed, flags)


def _host(t: torch.Tensor) -> torch.Tensor:
    # A private contiguous CPU copy: safetensors refuses views that share storage (tied weights).
    return t.detach().to("cpu", copy=True).contiguous()


def _flatten(ckpt: Checkpoint) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {f"model/{k}": _host(v) for k, v in ckpt.model.items()}
    tensors.update({f"rng/{k}": _host(v) for k, v in ckpt.rng.items()})
    if ckpt.best_weights is not None:
        tensors.update({f"best/{k}": _host(v) for k, v in ckpt.best_weights.items()})
    opt_state: dict[str, dict[str, Any]] = {}
    for pid, entries in ckpt.optimizer.get("state", {}).items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{pid}/{key}"] = _host(value)
            else:  # plain numbers (and None) stay in the JSON part
                opt_state.setdefault(str(pid), {})[key] = value
    meta = {
        "epoch": ckpt.epoch,
        "history": ckpt.history,
        "optimizer": {"param_groups": ckpt.optimizer.get("param_groups", []), "state": opt_state},
        "optimizer_params": sorted({str(p) for p in ckpt.optimizer.get("state", {})}),
        "schedule": ckpt.schedule,
        "early_stopping": ckpt.early_stopping,
        "scaler": ckpt.scaler,
        "extra": ckpt.extra,
        "has_best": ckpt.best_weights is not None,
    }
    return tensors, meta


def save_checkpoint(directory: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically into ``directory`` and make it the last one; returns last.json."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, meta = _flatten(ckpt)
    token = secrets.token_hex(6)
    tensor_name = f"ckpt-{ckpt.epoch:06d}-{token}.safetensors"
    blob = safetensors_bytes(tensors, metadata={"format": _FORMAT, "token": token})
    atomic_write_bytes(folder / tensor_name, blob)
    doc = {"format": _FORMAT, "version": _VERSION, "tensors": tensor_name, "token": token, **meta}
    text = json.dumps(_json.encode(doc), allow_nan=False)
    atomic_write_bytes(folder / LAST, text.encode("utf-8"))
    # Only now is the new pair the last one: older tensor files and stale temp files can go.
    for old in folder.iterdir():
        stale_pair = old.name.startswith("ckpt-") and old.suffix == ".safetensors" and old.name != tensor_name
        stale_tmp = old.name.startswith((f".{LAST}.", ".ckpt-")) and old.name.endswith(".tmp")
        if stale_pair or stale_tmp:
            old.unlink(missing_ok=True)
    return folder / LAST


def _unusable(path: Path, why: str) -> TrainingError:
    return TrainingError(
        f"Checkpoint {path} is unusable: {why}; delete the folder to start over, or train without resume"
    )


def load_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The last complete checkpoint in ``directory``, or None when there is none."""
    folder = Path(directory)
    last = folder / LAST
    if not last.is_file():
        return None
    try:
        doc = _json.decode(json.loads(last.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unusable(last, f"cannot read it ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
        raise _unusable(last, f"expected a {_FORMAT} version {_VERSION} file")
    tensor_path = folder / str(doc["tensors"])
    if not tensor_path.is_file():
        raise _unusable(last, f"its tensor file {tensor_path.name} is missing")
    try:
        with safe_open(str(tensor_path), framework="pt", device="cpu") as fh:
            if (fh.metadata() or {}).get("token") != doc["token"]:
                raise _unusable(last, f"{tensor_path.name} belongs to another checkpoint")
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except TrainingError:
        raise
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise _unusable(tensor_path, f"cannot read it ({exc})") from None
    return _unflatten(doc, tensors)


def _group(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _unflatten(doc: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Checkpoint:
    state: dict[int, dict[str, Any]] = {int(p): {} for p in doc["optimizer_params"]}
    for pid, entries in doc["optimizer"]["state"].items():
        state.setdefault(int(pid), {}).update(entries)
    for key, value in _group(tensors, "optimizer/").items():
        pid, _, name = key.partition("/")
        state.setdefault(int(pid), {})[name] = value
    # JSON has no tuples; torch keeps sequence hyperparameters (betas, etas) as tuples.
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in group.items()}
        for group in doc["optimizer"]["param_groups"]
    ]
    optimizer = {"state": state, "param_groups": groups}
    return Checkpoint(
        epoch=int(doc["epoch"]),
        model=_group(tensors, "model/"),
        optimizer=optimizer,
        history=doc["history"],
        schedule=doc["schedule"],
        rng=_group(tensors, "rng/"),
        early_stopping=doc["early_stopping"],
        best_weights=_group(tensors, "best/") if doc["has_best"] else None,
        scaler=doc["scaler"],
        extra=doc["extra"],
    )
