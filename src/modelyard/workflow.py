"""The one training path: spec → data → network → fit → evaluate → register.

The CLI, the Python API and (later) the control plane's workers all call ``train``;
nothing else builds, trains and registers models. Everything that can be checked
before training (spec, shapes, data, their fit to each other) is checked before the
run is written to the store, so bad input leaves the store untouched.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from modelyard._files import atomic_write_text
from modelyard.cards.facts import PRIVACY_KEY
from modelyard.data import Pipeline, Prepared, prepare
from modelyard.data.stored import pin_dataset
from modelyard.environment import environment, resolve_device
from modelyard.errors import DataError, ModelyardError, RunPruned, ShapeError, SpecError, TrainingError
from modelyard.monitoring.reference import reference_files
from modelyard.nn import Network, build_model
from modelyard.nn.builder import spec_parameters
from modelyard.nn.memory import check_training_memory
from modelyard.nn.pretrained.lora import adapter_state
from modelyard.nn.pretrained.pinning import bases, load_bases, pin_bases
from modelyard.spec import Spec, load_spec
from modelyard.status import Status
from modelyard.store import ModelStore, RunStore
from modelyard.store.heartbeat import Heartbeat
from modelyard.store.owner import record_owner
from modelyard.store.paths import using_home
from modelyard.store.privacy_ledger import charge, check_budget, dataset_id
from modelyard.training import FitResult, evaluate, fit
from modelyard.training.checkpoint import load_checkpoint
from modelyard.version_summary import summarize

__all__ = [
    "TrainResult",
    "train",
    "resume",
    "register_run",
    "build_checked",
    "check_fit",
    "eval_split",
    "model_meta",
]

log = logging.getLogger(__name__)

#: The run's fitted preprocessing, in its folder: a resumed or later-registered run re-creates
#: its data with it (a re-trained tokenizer would give other token ids than the weights learned).
RUN_PIPELINE_FILE = "preprocess.json"


@dataclass
class TrainResult:
    """What a finished training run produced."""

    run_id: str
    model_ref: str | None  # None for a run trained with ``register=False`` (a tuning trial)
    history: list[dict[str, Any]]
    test_metrics: dict[str, Any]
    runtime: dict[str, Any]
    train_time_s: float
    total_time_s: float
    spec: Spec = field(repr=False)
    network: Network = field(repr=False)
    best_epoch: int | None = None  # the epoch whose weights the network holds when early stopping restored them


def build_checked(spec: Spec, *, stored: Pipeline | None = None) -> tuple[Network, Prepared]:
    """Build the network and load the data, checking they fit each other.

    Runs entirely before anything is written to the store. ``stored``: the preprocessing a run
    already fitted (resume, register_run), used when the data still match it (``Prepared.data_changed``).
    """
    check_training_memory(spec_parameters(spec.model))  # gradients and optimizer state too, before any weight
    torch.manual_seed(spec.seed)
    network = build_model(spec.model, loss=spec.train.loss.type)
    load_bases(network, spec)  # pretrained layers: the base's safetensors weights, checked tensor by tensor
    prepared = prepare(spec.data, task=spec.task, seed=spec.seed, stored=stored)
    check_fit(spec, network, prepared)
    if spec.train.privacy is not None:  # delta against N, batch norm, streamed data: refused before any run exists
        from modelyard.training.privacy import check_private

        check_private(spec.train.privacy, network, prepared.train)
    if spec.federated is not None:  # more clients than samples, a label split of float targets: refused now
        from modelyard.federated.simulation import check_federated

        check_federated(spec, prepared)
    resolve_device(spec.train.device)  # a cuda request on a CPU machine fails now, not mid-run
    return network, prepared


def check_fit(spec: Spec, network: Network, prepared: Prepared) -> None:
    """The data's shape and labels must fit the network's input and output."""
    data_shape = tuple(prepared.input_shape)
    if data_shape != tuple(network.input_shape):
        raise ShapeError(
            f"Invalid value for `model.input`: the data gives samples of shape {list(data_shape)} after "
            f"preprocessing, but the model expects {list(network.input_shape)}; change model.input or add "
            f"a reshape step to data.preprocess",
            field="model.input",
        )
    out = tuple(network.output_shape)
    y = prepared.train.y
    if spec.train.loss.type == "cross_entropy":
        classes = prepared.num_classes
        if classes is not None and out[-1] != classes:
            raise ShapeError(
                f"Invalid value for `model.layers[{len(spec.model.layers) - 1}]`: the data has {classes} classes, "
                f"so the last layer must output {classes} values, but it outputs {out[-1]}",
                field=f"model.layers[{len(spec.model.layers) - 1}]",
            )
    else:
        want = tuple(y.shape[1:])
        if want and want != out and not (out == (1,) and want == ()):
            raise ShapeError(
                f"Invalid value for `model.layers[{len(spec.model.layers) - 1}]`: the targets have shape "
                f"{list(want)} per sample, but the network outputs {list(out)}",
                field=f"model.layers[{len(spec.model.layers) - 1}]",
            )


def model_meta(prepared: Prepared, spec: Spec) -> dict[str, Any]:
    """What a Predictor needs besides weights and spec: the fitted pipeline and label names."""
    return {
        "pipeline": prepared.pipeline.state_dict(),
        "task": spec.task,
        "num_classes": prepared.num_classes,
        "class_names": prepared.class_names,
        "feature_names": prepared.feature_names,
        "kind": prepared.kind,
    }


def eval_split(prepared: Prepared) -> tuple[str, Any]:
    """The split a model is judged on: test if there is one, else validation, else training."""
    for name in ("test", "val", "train"):
        split = getattr(prepared, name)
        if split is not None:
            return name, split
    raise DataError("No data to evaluate on: the train, validation and test splits are all empty")


def train(
    spec: str | Path | dict[str, Any] | Spec,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    home: str | Path | None = None,
    progress: bool = True,
    console: Any = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    on_run_created: Callable[[str], None] | None = None,
    register: bool = True,
    federation: str | None = None,
) -> TrainResult:
    """Train a model from a spec and register it; returns the run and the model version.

    ``on_run_created(run_id)`` runs once the run exists and before training starts (the
    control plane's worker stores the id in its job row, so a retry resumes this run).
    ``register=False`` (a tuning trial) finishes the run without looking at the test split or
    registering; ``register_run`` registers it later from its last checkpoint. An
    ``on_epoch_end`` that raises ``RunPruned`` ends the run as ``pruned``. ``federation``: the
    id of the deployed federation (``federated.mode: deployed``) whose aggregator this run is;
    the job worker passes it.
    """
    started = time.perf_counter()
    spec = pin_bases(load_spec(spec, overrides))  # the run and the version record each base's identity
    if spec.federated is not None and (spec.federated.mode == "deployed") != (federation is not None):
        raise SpecError(
            "Invalid value for `federated.mode`: deployed runs the aggregator in the control plane; start it with "
            "`modelyard federated start SPEC --server URL` (POST /v1/federations), received mode "
            f"{spec.federated.mode!r}" + (" for a federation" if federation else " in `modelyard train`"),
            field="federated.mode",
        )
    with using_home(home):  # a `dataset` source reads the same store
        spec = pin_dataset(spec)  # and the run records the version it read
        network, prepared = build_checked(spec)
    privacy = spec.train.privacy
    if privacy is not None:  # the data set's privacy budget, before anything is written
        dataset = dataset_id(spec.to_dict()["data"]["source"])
        check_budget(home, dataset, epsilon=privacy.epsilon, budget=privacy.budget)
    runs = RunStore(home)
    run = runs.create(spec.to_dict(), environment(seed=spec.seed, device=spec.train.device))
    if privacy is not None:
        charge(home, dataset, run_id=run.id, epsilon=privacy.epsilon, delta=privacy.delta)
    _save_run_pipeline(runs, run.id, prepared.pipeline)
    if on_run_created is not None:
        on_run_created(run.id)
    return _run(
        spec,
        network,
        prepared,
        runs,
        run.id,
        home=home,
        resume=False,
        progress=progress,
        console=console,
        on_epoch_end=on_epoch_end,
        started=started,
        register=register,
        federation=federation,
    )


def resume(
    run_id: str,
    *,
    home: str | Path | None = None,
    progress: bool = True,
    console: Any = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Continue a failed or interrupted run from its last good checkpoint.

    A run still marked ``running`` is taken over only if its process is gone (dead on this
    machine, or no heartbeat for ``STALE_AFTER_S``): ``RunStore.settle_stale`` decides.
    """
    started = time.perf_counter()
    runs = RunStore(home)
    record = runs.settle_stale(run_id)
    if record.status == Status.SUCCEEDED:
        raise TrainingError(f"Run {record.id} already succeeded and registered {record.model_ref}; nothing to resume")
    spec = load_spec(record.spec)
    if spec.federated is not None:
        raise TrainingError(
            f"Run {record.id} is federated; its rounds keep no checkpoint to resume from, train it again"
        )
    with using_home(home):
        network, prepared = _rebuilt(spec, runs, record.id)
    return _run(
        spec,
        network,
        prepared,
        runs,
        record.id,
        home=home,
        resume=True,
        progress=progress,
        console=console,
        on_epoch_end=on_epoch_end,
        started=started,
    )


def _run(
    spec: Spec,
    network: Network,
    prepared: Prepared,
    runs: RunStore,
    run_id: str,
    *,
    home: str | Path | None,
    resume: bool,
    progress: bool,
    console: Any,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
    started: float,
    register: bool = True,
    federation: str | None = None,
) -> TrainResult:
    runs.start(run_id)
    record_owner(runs.run_dir(run_id))  # lets `train --resume` and `runs cancel` find this process

    def record_epoch(epoch: int, metrics: dict[str, Any]) -> None:
        runs.log_epoch(run_id, epoch, metrics)  # also the run's heartbeat
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)

    try:
        with Heartbeat(runs, run_id):  # between epochs too: an epoch may outlast STALE_AFTER_S
            if federation is not None:  # a deployed federation's rounds: the clients fit in their own processes
                from modelyard.federated.deployed import run_deployed

                result: FitResult = run_deployed(
                    spec, network, prepared, record_epoch, federation=federation, home=home
                )
            elif spec.federated is not None:  # rounds of client fits, one history row per round
                from modelyard.federated.simulation import run_rounds

                result = run_rounds(spec, network, prepared, record_epoch)
            else:
                result = fit(
                    network,
                    prepared,
                    spec.train,
                    seed=spec.seed,
                    on_epoch_end=record_epoch,
                    checkpoint_dir=runs.run_dir(run_id) / "checkpoints",
                    resume=resume,
                    progress=progress,
                    console=console,
                )
            if resume:
                _log_missing_epochs(runs, run_id, result.history)
            test_metrics: dict[str, Any] = {}
            version = None
            if register:
                test_metrics, version = _evaluate_and_register(spec, network, prepared, result, run_id, home=home)
        summary = {
            "test": test_metrics,
            "runtime": result.runtime,
            "train_time_s": result.train_time_s,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "class_names": prepared.class_names,
        }
        if result.privacy is not None:
            summary[PRIVACY_KEY] = result.privacy
        if prepared.data_lineage:
            summary["dataset"] = prepared.data_lineage  # the stored dataset version read: ref, sha256
        runs.finish(run_id, summary, None if version is None else version.ref)
    except RunPruned as exc:  # a tuning trial's pruner stopped it: the run ends as such, not as failed
        runs.prune(run_id, exc.message)
        raise
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM through the CLI's handler (cli/train.py)
        _interrupted(runs, run_id)
        raise
    except ModelyardError as exc:
        runs.fail(run_id, exc.message)
        raise
    except Exception as exc:
        runs.fail(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return TrainResult(
        run_id=run_id,
        model_ref=None if version is None else version.ref,
        history=result.history,
        test_metrics=test_metrics,
        runtime=result.runtime,
        train_time_s=result.train_time_s,
        total_time_s=time.perf_counter() - started,
        spec=spec,
        network=network,
        best_epoch=result.best_epoch,
    )


def _save_run_pipeline(runs: RunStore, run_id: str, pipeline: Pipeline) -> None:
    atomic_write_text(runs.run_dir(run_id) / RUN_PIPELINE_FILE, json.dumps(pipeline.state_dict()))


def _rebuilt(spec: Spec, runs: RunStore, run_id: str) -> tuple[Network, Prepared]:
    """``build_checked`` for an existing run: its data through the preprocessing it was trained with.

    A run from before the file existed refits it, as it always did; a run whose data changed
    since it started is refused (its checkpoint's weights learned other inputs).
    """
    path = runs.run_dir(run_id) / RUN_PIPELINE_FILE
    stored = Pipeline.from_state(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None
    network, prepared = build_checked(spec, stored=stored)
    if prepared.data_changed:
        raise DataError(
            f"The data of run {run_id} changed since it started (its preprocessing no longer matches "
            f"{path}); its checkpoint learned other inputs, train the spec again"
        )
    return network, prepared


def _evaluate_and_register(
    spec: Spec,
    network: Network,
    prepared: Prepared,
    result: FitResult,
    run_id: str,
    *,
    home: str | Path | None,
    lineage: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Judge the trained network on its evaluation split and register it as a version of ``spec.name``."""
    split_name, split = eval_split(prepared)
    test_metrics = evaluate(
        network,
        split,
        metrics=list(spec.train.metrics),
        loss=spec.train.loss,
        task=spec.task,
        num_classes=prepared.num_classes,
    )
    test_metrics = {"split": split_name, **test_metrics}
    state = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    state = adapter_state(network, spec, state)  # a LoRA layer's base stays out: the spec names it (name, sha256)
    meta = model_meta(prepared, spec)
    version = ModelStore(home).register(
        spec.name,
        state_dict=state,
        spec=spec.to_dict(),
        preprocess=meta,
        metrics={
            "test": test_metrics,
            "history": result.history,
            "runtime": result.runtime,
            **({PRIVACY_KEY: result.privacy} if result.privacy is not None else {}),
        },
        run_id=run_id,
        lineage={
            **({"bases": pinned} if (pinned := bases(spec)) else {}),
            **({"dataset": prepared.data_lineage} if prepared.data_lineage else {}),
            **({"federated": result.runtime["federated"]} if spec.federated is not None else {}),
            **(lineage or {}),
        }
        or None,
        task=spec.task,
        description=spec.description,
        summary=summarize(network, spec, meta, prepared.pipeline.raw_input_shape),
        # What `modelyard monitor` compares served traffic with (docs/monitoring.md).
        extra_files=reference_files(network, prepared.train, split, task=spec.task, seed=spec.seed),
    )
    return test_metrics, version


def register_run(run_id: str, *, home: str | Path | None = None, lineage: dict[str, Any] | None = None) -> str:
    """Register the model a finished ``register=False`` run trained (the best trial of a tune); returns its ref.

    The weights come from the run's last checkpoint (with early stopping's best weights restored, as
    the run itself would have); the data are re-created from the stored spec and seed through the
    preprocessing the run fitted (its ``preprocess.json``), the same way ``evaluate_model`` re-creates a split. Registration is idempotent per run.
    """
    runs = RunStore(home)
    record = runs.get(run_id)
    if record.model_ref is not None:
        return record.model_ref
    if record.status != Status.SUCCEEDED:
        raise TrainingError(f"Run {record.id} is {record.status}; only a succeeded run can be registered")
    spec = load_spec(record.spec)
    folder = runs.run_dir(record.id) / "checkpoints"
    if load_checkpoint(folder) is None:
        raise TrainingError(f"Run {record.id} has no checkpoint in {folder}; it cannot be registered without training")
    with using_home(home):
        network, prepared = _rebuilt(spec, runs, record.id)
    result = fit(
        network, prepared, spec.train, seed=spec.seed, checkpoint_dir=folder, resume=True, progress=False
    )  # every epoch is in the checkpoint: this loads it and restores the best weights, training nothing
    _, version = _evaluate_and_register(spec, network, prepared, result, record.id, home=home, lineage=lineage)
    runs.set_model(record.id, version.ref)
    return version.ref


def _interrupted(runs: RunStore, run_id: str) -> None:
    """Mark the run interrupted, unless `runs cancel` settled it first (that is why it stopped)."""
    if runs.get(run_id).status == Status.RUNNING:
        runs.interrupt(run_id, f"interrupted (resume with `modelyard train --resume {run_id}`)")


def _log_missing_epochs(runs: RunStore, run_id: str, history: list[dict[str, Any]]) -> None:
    """Epochs the checkpoint holds but the store lacks: a kill between an epoch's checkpoint and
    its ``log_epoch`` (``fit`` saves first) would otherwise leave a hole in the run's history."""
    stored = {row["epoch"] for row in runs.get(run_id).history}
    for row in history:
        if row["epoch"] not in stored:
            runs.log_epoch(run_id, int(row["epoch"]), row)
