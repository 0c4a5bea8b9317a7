"""The Spec: one declarative description of data, network and training.

A spec comes from a YAML/JSON file, a Python dict or a REST body; ``load_spec``
validates it completely before any work starts and returns a frozen ``Spec``.
Components (layers, losses, ...) are resolved through their registries, so the stored
spec is canonical: every default filled in, every alias replaced by its name.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from modelyard._documents import TOO_MANY_DIGITS, load_json
from modelyard._validation import StrictModel, describe, spec_error_from
from modelyard.components import ComponentRegistry, ComponentSpec
from modelyard.errors import SpecError
from modelyard.federated.spec import FederatedSpec
from modelyard.registry import closest

__all__ = [
    "Spec",
    "DataSpec",
    "ModelSpec",
    "TrainSpec",
    "EarlyStoppingSpec",
    "PrivacySpec",
    "load_spec",
    "read_spec_file",
    "apply_overrides",
    "apply_values",
    "TUNE_SECTION",
    "FEDERATION_SECTION",
    "registry_for",
    "CLASSIFICATION_LOSSES",
]

# Where each component kind's registry lives. Imported lazily: those modules import
# this one for the spec types, and validation only needs them once a spec is parsed.
_REGISTRIES = {
    "layer": ("modelyard.nn.layers", "LAYERS"),
    "loss": ("modelyard.training.losses", "LOSSES"),
    "optimizer": ("modelyard.training.optimizers", "OPTIMIZERS"),
    "schedule": ("modelyard.training.schedules", "SCHEDULES"),
    "metric": ("modelyard.metrics", "METRICS"),
    "source": ("modelyard.data.sources", "SOURCES"),
    "preprocess": ("modelyard.data.preprocess", "PREPROCESSORS"),
}

# Losses whose targets are class labels; a spec using one describes a classifier.
CLASSIFICATION_LOSSES = frozenset({"cross_entropy", "binary_cross_entropy"})

_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def registry_for(kind: str) -> ComponentRegistry:
    module, attr = _REGISTRIES[kind]
    return getattr(importlib.import_module(module), attr)


def _component(kind: str, raw: Any, field: str) -> ComponentSpec:
    return registry_for(kind).parse(raw, field=field)


class DataSpec(StrictModel):
    """``data:`` — where the data comes from, how it is split and preprocessed.

    Keys other than the ones below are options of the source (for example ``path``
    and ``target`` of a ``csv`` source); they are validated by the source itself.
    ``dataset: NAME:N`` is short for ``source: dataset, name: NAME:N`` (a stored dataset).
    """

    source: ComponentSpec
    validation: float = Field(0.0, ge=0.0, lt=1.0)
    test: float | None = Field(None, ge=0.0, lt=1.0)
    preprocess: list[ComponentSpec] = []
    limit: int | None = Field(None, ge=1)
    stream: bool = False  # keep the splits on disk and read batches as training needs them (npy source)

    @model_validator(mode="before")
    @classmethod
    def _gather_source_options(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        own = {"source", "validation", "test", "preprocess", "limit", "stream"}
        if "dataset" in data:  # the short form of a stored dataset: {dataset: NAME:N, target: ...}
            if "source" in data or "name" in data:
                clash = "source" if "source" in data else "name"
                raise ValueError(
                    f"expected either `dataset: NAME:VERSION` or `source:`, received both `dataset` and `{clash}`"
                )
            data = {k: v for k, v in data.items() if k != "dataset"} | {"source": "dataset", "name": data["dataset"]}
        if "source" not in data:
            raise ValueError("missing required field 'source' (a built-in data set or a file format)")
        extra = {k: v for k, v in data.items() if k not in own}
        out = {k: v for k, v in data.items() if k in own}
        source = data["source"]
        if isinstance(source, str):
            source = {"type": source, **extra}
        elif extra:
            if isinstance(source, dict):
                source = {**source, **extra}
        out["source"] = _component("source", source, "data.source" if not extra else "data")
        out["preprocess"] = [
            _component("preprocess", step, f"data.preprocess[{i}]")
            for i, step in enumerate(_as_list(data.get("preprocess", []), "data.preprocess"))
        ]
        return out


class ModelSpec(StrictModel):
    """``model:`` — the input shape (without the batch axis) and the layers in order."""

    input: list[int] = Field(min_length=1)
    layers: list[ComponentSpec] = Field(min_length=1)

    @field_validator("input", mode="before")
    @classmethod
    def _scalar_input(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("input")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError(f"expected a list of positive sizes such as [784] or [1, 28, 28], received {value}")
        return value

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        return [
            _component("layer", layer, f"model.layers[{i}]") for i, layer in enumerate(_as_list(value, "model.layers"))
        ]


class EarlyStoppingSpec(StrictModel):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best: bool = True


class PrivacySpec(StrictModel):
    """``train.privacy:`` — differentially private training (DP-SGD through Opacus, docs/privacy.md).

    The noise is calibrated so that the run's last step spends exactly ``epsilon`` (RDP accountant)
    at ``delta``; each sample's gradient is clipped to ``max_grad_norm``. ``clipping: ghost``
    computes per-sample gradient norms without materialising per-sample gradients (Opacus's ghost
    clipping); ``hooks`` is Opacus's default per-sample gradient hooks (slower, more memory).
    ``budget`` caps the ε spent on the training data across all runs of this store.
    """

    epsilon: float = Field(gt=0.0)
    delta: float = Field(gt=0.0, lt=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    clipping: Literal["ghost", "hooks"] = "ghost"
    budget: float | None = Field(None, gt=0.0)


class DistributedSpec(StrictModel):
    """``train.distributed:`` — data-parallel training (DDP) on ``workers`` processes (docs/scaling.md).

    ``engine: ray`` runs them through Ray Train's TorchTrainer (extra ``modelyard[ray]``), ``local``
    through torch.distributed with spawned processes. ``batch_size`` is per worker: the global
    batch is ``batch_size x workers``. A worker that dies is replaced up to ``max_failures`` times
    and the run resumes from its last checkpoint. ``strategy: fsdp`` shards the parameters, their
    gradients and the optimizer state across the workers (FSDP2 ``fully_shard``, one unit per
    transformer encoder block) instead of replicating them (``ddp``).
    """

    workers: int = Field(ge=1, le=1024)
    engine: Literal["ray", "local"] = "ray"
    strategy: Literal["ddp", "fsdp"] = "ddp"
    backend: Literal["auto", "gloo", "nccl"] = "auto"  # auto: nccl on CUDA, else gloo
    cpus_per_worker: int = Field(1, ge=1)  # also each worker's intra-op threads
    max_failures: int = Field(2, ge=0, le=100)


class TrainSpec(StrictModel):
    """``train:`` — loss, optimizer and everything about the training loop."""

    loss: ComponentSpec
    optimizer: ComponentSpec = Field(default_factory=lambda: _component("optimizer", "adam", "train.optimizer"))
    lr: float = Field(1e-3, gt=0.0)
    batch_size: int | Literal["full"] = 32
    epochs: int = Field(10, ge=1)
    metrics: list[ComponentSpec] = []
    schedule: ComponentSpec | None = None
    weight_decay: float = Field(0.0, ge=0.0)
    l1: float = Field(0.0, ge=0.0)
    l2: float = Field(0.0, ge=0.0)
    clip_grad_norm: float | None = Field(None, gt=0.0)
    clip_grad_value: float | None = Field(None, gt=0.0)
    early_stopping: EarlyStoppingSpec | None = None
    shuffle: bool = True
    # Token data for a network that pools over tokens: batches of similar lengths (each batch
    # is cut to its longest sequence either way); Hugging Face Trainer's option of the same name.
    group_by_length: bool = False
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    checkpoint: bool = True
    log_every: int = Field(20, ge=1)
    privacy: PrivacySpec | None = None
    # Gradient accumulation: one optimizer step per this many batches (their gradients summed,
    # weighted by size), so batch_size x accumulate_batches is the effective batch.
    accumulate_batches: int = Field(1, ge=1)
    # Layer-wise learning rates (training/layer_lr.py): each encoder block below the head trains at
    # this factor of the rate above it, the embeddings lowest; None: one rate for every parameter.
    layer_lr_decay: float | None = Field(None, gt=0.0, le=1.0)
    distributed: DistributedSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _components(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "loss" in data:
            data["loss"] = _component("loss", data["loss"], "train.loss")
        if "optimizer" in data:
            data["optimizer"] = _component("optimizer", data["optimizer"], "train.optimizer")
        if data.get("schedule") is not None:
            data["schedule"] = _component("schedule", data["schedule"], "train.schedule")
        if "metrics" in data:
            data["metrics"] = [
                _component("metric", m, f"train.metrics[{i}]")
                for i, m in enumerate(_as_list(data["metrics"], "train.metrics"))
            ]
        if data.get("early_stopping") is True:
            data["early_stopping"] = {}
        elif data.get("early_stopping") is False:
            data["early_stopping"] = None
        return data

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ValueError(f"expected a positive integer or 'full', received {describe(value)}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        ok = value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit())
        if not ok:
            raise ValueError(f"expected one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps', received {value!r}")
        return value

    @model_validator(mode="after")
    def _full_batch_optimizer(self) -> TrainSpec:
        # Gradient descent in the textbook sense: one step per epoch over the whole set.
        if self.optimizer.type == "gd":
            if "batch_size" in self.model_fields_set and self.batch_size != "full":
                raise ValueError(
                    f"optimizer 'gd' (full-batch gradient descent) steps on the whole training set; "
                    f"expected batch_size 'full' or none, received {self.batch_size!r}"
                )
            object.__setattr__(self, "batch_size", "full")
        return self

    @model_validator(mode="after")
    def _private_options(self) -> TrainSpec:
        # DP-SGD clips each sample's gradient and owns the step: options that clip the batch's
        # gradient, add a data-dependent term outside the per-sample loss, or replace the step
        # (compiled graphs, fp16 loss scaling) would break the privacy accounting or the clipping.
        if self.privacy is None:
            return self
        conflicts = {
            "clip_grad_norm": (self.clip_grad_norm is not None, "privacy.max_grad_norm clips each sample"),
            "clip_grad_value": (self.clip_grad_value is not None, "privacy.max_grad_norm clips each sample"),
            "l1": (self.l1 > 0, "use weight_decay"),
            "l2": (self.l2 > 0, "use weight_decay"),
            "compile": (self.compile, "set compile false"),
            "precision": (self.precision in ("fp16", "bf16"), "use precision fp32 or auto"),
            "accumulate_batches": (self.accumulate_batches > 1, "raise batch_size instead"),
        }
        if self.distributed is not None:
            conflicts["distributed"] = (True, "train on one process")
        for name, (bad, hint) in conflicts.items():
            if bad:
                raise ValueError(
                    f"train.{name} cannot be combined with train.privacy (differentially private training): "
                    f"expected it unset, received {getattr(self, name)!r}; {hint}"
                )
        return self

    @model_validator(mode="after")
    def _distributed_options(self) -> TrainSpec:
        # Workers replaced after a failure resume from the checkpoint rank 0 writes; compiled graphs
        # and full-batch steps have no per-worker shard to take.
        if self.distributed is None:
            return self
        if not self.checkpoint:
            raise ValueError(
                "train.distributed needs train.checkpoint (workers resume from it after a failure): "
                "expected checkpoint true, received false"
            )
        if self.batch_size == "full":
            raise ValueError(
                "train.distributed takes a per-worker batch_size: expected a positive integer, received 'full'"
            )
        if self.compile:
            raise ValueError(
                "train.compile cannot be combined with train.distributed: expected it unset, received True"
            )
        # The best epoch's weights would be kept as each worker's shards, not as one network.
        early = self.early_stopping
        if self.distributed.strategy == "fsdp" and early is not None and early.restore_best:
            raise ValueError(
                "train.early_stopping.restore_best cannot be combined with train.distributed.strategy fsdp: "
                "expected restore_best false, received true; or use strategy ddp"
            )
        return self

    @property
    def task(self) -> Literal["classification", "regression"]:
        return "classification" if self.loss.type in CLASSIFICATION_LOSSES else "regression"


class Spec(StrictModel):
    """A whole modelyard spec: ``name``, ``data``, ``model`` and ``train``."""

    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    seed: int = 0
    data: DataSpec
    model: ModelSpec
    train: TrainSpec
    federated: FederatedSpec | None = None  # docs/federated.md

    @model_validator(mode="after")
    def _federated_options(self) -> Spec:
        # Each client trains in memory on its part of the training split; DP-SGD's accounting is per
        # sample of one data set, not per client: federated.dp is the client-level DP.
        if self.federated is None:
            return self
        if self.train.privacy is not None:
            raise ValueError(
                "train.privacy cannot be combined with federated: expected train.privacy unset, received "
                "a privacy section; sample-level DP-SGD inside federated clients is not supported; use federated.dp (client-level DP)"
            )
        if self.data.stream:
            raise ValueError("data.stream cannot be combined with federated: expected false, received true")
        column = self.federated.partition.column
        named = self.data.source.options.get("groups")
        if self.federated.partition.type == "column" and named != column:
            raise ValueError(
                f"data.groups: expected {column!r}, the column federated.partition names (the table source then "
                f"reads it as each row's client, not as a feature), received {named!r}"
            )
        return self

    @property
    def task(self) -> Literal["classification", "regression"]:
        return self.train.task

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain JSON-able data (round-trips through ``load_spec``)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def _as_list(value: Any, field: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (str, dict)):
        return [value]
    raise SpecError(f"Invalid value for `{field}`: expected a list, received {describe(value)}", field=field)


def read_spec_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON spec file as a dict; a missing or malformed file is a one-line SpecError."""
    if not path.exists():
        raise SpecError(f"Spec file not found: {path}", field="spec")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Cannot read spec file {path}: {exc}", field="spec") from None
    if path.suffix.lower() == ".json":
        data = load_json(text, SpecError, f"spec file {path}")
    else:
        data = _load_yaml(text, path)
    if not isinstance(data, dict):
        raise SpecError(
            f"Invalid spec file {path}: expected a mapping with name, data, model and train, received {describe(data)}",
            field="spec",
        )
    return data


def _load_yaml(text: str, path: Path) -> Any:
    import yaml  # only spec files and --set need it, not a stored (JSON) spec

    try:
        return yaml.safe_load(text)
    except ValueError:  # Python's int-to-str guard (an integer of more than 4,300 digits)
        raise SpecError(f"Invalid number in spec file {path}: {TOO_MANY_DIGITS}", field="spec") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"Malformed spec file {path}{where}: {problem}", field="spec") from None


#: The top-level section read by ``modelyard tune`` and left out of the model's spec.
TUNE_SECTION = "tune"
#: The top-level section of a federation's job (``{id: fed-...}``, written by POST /v1/federations),
#: read by the job worker and left out of the model's spec, as ``tune`` is.
FEDERATION_SECTION = "federation"


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides to a raw spec dict (values parsed as YAML).

    List items are addressed by index (``model.layers.0.dense=128``). A key that does
    not exist yet is allowed only where the spec allows new keys; validation after
    this step catches the rest with a did-you-mean hint.
    """
    import yaml

    values: list[tuple[str, Any]] = []
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"Invalid override {item!r}: expected PATH=VALUE such as train.lr=0.01", field="--set")
        path, _, text = item.partition("=")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except (yaml.YAMLError, ValueError):  # ValueError: an integer of more than 4,300 digits
            value = text
        values.append((path.strip(), value))
    return apply_values(data, values)


def apply_values(data: dict[str, Any], values: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of the raw spec ``data`` with each dotted ``path`` set to its (already parsed) value.

    The walk of ``apply_overrides``; ``modelyard tune`` sets its sampled values through it.
    """
    data = copy.deepcopy(data)
    for path, value in values:
        keys = path.split(".")
        if not path or any(not k for k in keys):
            raise SpecError(f"Invalid override path {path!r}: expected dotted keys such as train.lr", field="--set")
        node: Any = data
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise SpecError(
                        f"Invalid override path `{where}`: expected a list index below {len(node)}, received {key!r}",
                        field=where,
                    )
                if last:
                    node[int(key)] = value
                else:
                    node = node[int(key)]
            elif isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    if key not in node:
                        if depth == 0:
                            hint = closest(key, ["name", "description", "seed", "data", "model", "train"])
                            if hint != key:
                                extra = f"; did you mean {hint!r}?" if hint else ""
                                raise SpecError(f"Invalid override path `{where}`: no such section{extra}", field=where)
                        node[key] = {}
                    elif isinstance(node[key], str) and not last:
                        # `--set train.optimizer.momentum=0.9` on `optimizer: sgd`
                        node[key] = {"type": node[key]}
                    node = node[key]
            else:
                raise SpecError(
                    f"Invalid override path `{where}`: `{'.'.join(keys[:depth])}` is not a section", field=where
                )
    return data


def load_spec(
    source: str | Path | dict[str, Any] | Spec,
    overrides: list[str] | tuple[str, ...] = (),
) -> Spec:
    """Load and fully validate a spec from a file path, a dict or a Spec.

    A top-level ``tune:`` section is the search of ``modelyard tune`` (``modelyard.tuning``); the
    model's spec is the rest, so the same file trains with ``modelyard train`` too.
    """
    if isinstance(source, Spec):
        if not overrides:
            return source
        data = source.to_dict()
    elif isinstance(source, dict):
        data = source
    else:
        data = read_spec_file(Path(source))
    if isinstance(data, dict) and (TUNE_SECTION in data or FEDERATION_SECTION in data):
        data = {k: v for k, v in data.items() if k not in (TUNE_SECTION, FEDERATION_SECTION)}
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc) from None
