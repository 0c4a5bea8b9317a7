"""The three compressions as functions: parent model + its data → child network, spec and record.

Each returns an ``Outcome``; ``api.compress`` measures it next to the parent, registers it
and checks that it loads back bit for bit. Training (fine-tuning, distillation) always
goes through ``training.fit``, the one training loop.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

from modelyard.compression import distill as kd
from modelyard.compression import prune as pr
from modelyard.compression import qtensors
from modelyard.compression.quantize import choose_mode, is_quantized, quantize_network
from modelyard.data import Prepared, Split
from modelyard.errors import InputError
from modelyard.nn import Network, build_model
from modelyard.predict import Predictor
from modelyard.spec import Spec, TrainSpec, load_spec
from modelyard.training import evaluate, fit

__all__ = ["Outcome", "distill", "prune", "quantize"]


@dataclass
class Outcome:
    """A compressed network, ready to measure and register."""

    network: Network
    spec: Spec
    options: dict[str, Any]
    state: dict[str, torch.Tensor]  # what goes into weights.safetensors
    compression: dict[str, Any]  # what goes into compression.json (besides format/parent/operation)
    baseline: dict[str, Any] | None = None  # distillation: the same student trained without a teacher
    history: list[dict[str, Any]] = field(default_factory=list)


def _float_copy(parent: Predictor, what: str) -> Network:
    if is_quantized(parent.network):
        raise InputError(
            f"Cannot {what} model {parent.ref}: it is quantized to int8; {what} its float parent "
            f"({parent.version.lineage.get('parent', 'the model it was made from')}) and quantize the result",
            field="ref",
        )
    return copy.deepcopy(parent.network)


def _settle(network: Network) -> Network:
    """After ``fit``: on the CPU, in eval mode and in the default memory format (fit may pick
    channels_last for conv nets), so it computes bit for bit what the reloaded version does."""
    network.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return network


def _plain_state(network: Network) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}


def _tuning_spec(train: TrainSpec, epochs: int) -> TrainSpec:
    """The parent's training settings for ``epochs`` more epochs, without checkpoints or early stopping."""
    return train.model_copy(update={"epochs": epochs, "checkpoint": False, "early_stopping": None})


def quantize(parent: Predictor, prepared: Prepared, *, dtype: str, calibration_samples: int = 1024) -> Outcome:
    """int8: dynamic for dense networks, static (calibrated on training samples) with convolutions."""
    if dtype != "int8":
        raise InputError(f"Invalid value for `--quantize`: expected 'int8', received {dtype!r}", field="--quantize")
    mode = choose_mode(parent.network, parent.ref)  # refuses an already quantized model
    network = copy.deepcopy(parent.network)
    calibration = None
    options: dict[str, Any] = {"dtype": "int8", "mode": mode}
    if mode == "static":
        gen = torch.Generator().manual_seed(parent.spec.seed)
        take = torch.randperm(len(prepared.train.x), generator=gen)[:calibration_samples]
        calibration = prepared.train.x[take]
        options["calibration_samples"] = len(take)
    step = quantize_network(network, mode, calibration)
    tensors, description = qtensors.encode(network)
    return Outcome(network, parent.spec, options, tensors, {"quantization": {**step, "state": description}})


def prune(
    parent: Predictor, prepared: Prepared, *, fraction: float, structured: bool, finetune: int, progress: bool = False
) -> Outcome:
    """Magnitude pruning (unstructured or whole units), then ``finetune`` epochs of training."""
    fraction = pr.check_fraction(fraction)
    if isinstance(finetune, bool) or not isinstance(finetune, int) or finetune < 0:
        raise InputError(
            f"Invalid value for `--finetune`: expected a whole number of epochs >= 0, received {finetune!r}",
            field="--finetune",
        )
    network = _float_copy(parent, "prune")
    spec = parent.spec
    options: dict[str, Any] = {"fraction": fraction, "structured": structured, "finetune_epochs": finetune}
    if structured:
        plan = pr.plan_structured(network, spec.to_dict(), fraction)
        network, spec_dict = pr.prune_structured(network, spec.to_dict(), plan, loss=spec.train.loss.type)
        spec = load_spec(spec_dict)
        options["kept_units"] = {f"model.layers[{i}]": len(k) for i, k in plan.keep.items()}
        if plan.skipped:
            options["left_whole"] = plan.skipped
    else:
        pr.prune_unstructured(network, fraction)
    history: list[dict[str, Any]] = []
    if finetune:
        history = fit(network, prepared, _tuning_spec(spec.train, finetune), seed=spec.seed, progress=progress).history
    if not structured:
        pr.finalize_unstructured(network)
    _settle(network)
    return Outcome(network, spec, options, _plain_state(network), {}, history=history)


def distill(
    parent: Predictor,
    prepared: Prepared,
    *,
    student: Any,
    temperature: float,
    alpha: float,
    baseline: bool = True,
    name: str | None = None,
    progress: bool = False,
) -> Outcome:
    """Train ``student`` on the teacher's soft targets plus the labels (and, optionally, without the teacher)."""
    temperature, alpha = kd.check_options(temperature, alpha)
    teacher = parent.network
    if parent.task != "classification" or teacher.output_activation != "softmax":
        raise InputError(
            f"Cannot distill model {parent.ref}: expected a softmax classifier (loss cross_entropy) as the "
            f"teacher, received a {parent.task} model with output {teacher.output_activation or 'values'}",
            field="ref",
        )
    spec = kd.student_spec(student, parent.spec, name=name)
    torch.manual_seed(spec.seed)
    network = build_model(spec.model, loss=spec.train.loss.type)
    kd.check_student(network, teacher, parent.ref)
    packed = kd.pack_targets(kd.teacher_logits(teacher, prepared.train.x), prepared.train.y)
    data = SimpleNamespace(train=Split(prepared.train.x, packed), val=prepared.val, num_classes=prepared.num_classes)
    # The packed targets are not labels, so training-time metrics are off; validation still reports val_loss.
    train = spec.train.model_copy(update={"metrics": [], "checkpoint": False})
    result = fit(
        network,
        data,
        train,
        seed=spec.seed,
        progress=progress,
        loss_fn=kd.packed_kd_loss(temperature=temperature, alpha=alpha),
    )
    _settle(network)
    options = {
        "student_parameters": sum(p.numel() for p in network.parameters()),
        "temperature": temperature,
        "alpha": alpha,
        "epochs": spec.train.epochs,
    }
    outcome = Outcome(network, spec, options, _plain_state(network), {}, history=result.history)
    if baseline:
        torch.manual_seed(spec.seed)
        alone = build_model(spec.model, loss=spec.train.loss.type)
        fit(alone, prepared, spec.train.model_copy(update={"checkpoint": False}), seed=spec.seed, progress=progress)
        outcome.baseline = {"network": _settle(alone)}
    return outcome


def test_metrics(network: Network, spec: Spec, split: Split, num_classes: int | None) -> dict[str, Any]:
    """The spec's metrics on the parent's test split (fp32, as ``modelyard eval`` computes them)."""
    return evaluate(
        network, split, metrics=list(spec.train.metrics), loss=spec.train.loss, task=spec.task, num_classes=num_classes
    )
