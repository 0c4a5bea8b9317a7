"""Knowledge distillation: a small student learns from a teacher's softened outputs and the labels.

Loss (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network"):

    alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(student, label)

T² keeps the soft term's gradients on the scale of the hard term's as T grows. Training
runs through ``training.fit`` (the one training loop): the teacher's logits for every
training sample are computed once and packed beside the label into the targets
(``[N, C + 1]``), and ``distillation_loss`` unpacks them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from modelyard.errors import InputError, ShapeError, SpecError
from modelyard.nn import Network
from modelyard.spec import Spec, load_spec, read_spec_file  # the same YAML/JSON errors as spec files

__all__ = [
    "check_options",
    "check_student",
    "kd_loss",
    "pack_targets",
    "packed_kd_loss",
    "student_spec",
    "teacher_logits",
]

_STUDENT_KEYS = {"name", "description", "seed", "data", "model", "train"}


def kd_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, *, temperature: float, alpha: float
) -> torch.Tensor:
    """The distillation loss above for logits ``[N, C]`` and class indices ``[N]`` (batch mean)."""
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student.float() / t, dim=1),
        F.log_softmax(teacher.float() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    hard = F.cross_entropy(student.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard


def packed_kd_loss(*, temperature: float, alpha: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``kd_loss`` on targets packed by ``pack_targets`` (teacher logits, then the label)."""

    def loss(output: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        return kd_loss(output, packed[:, :-1], packed[:, -1].long(), temperature=temperature, alpha=alpha)

    return loss


def pack_targets(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` teacher logits + ``[N]`` labels → ``[N, C + 1]`` float targets."""
    return torch.cat([logits.float(), labels.float().reshape(-1, 1)], dim=1)


@torch.inference_mode()
def teacher_logits(network: Network, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The teacher's raw outputs (before its softmax) for every sample, in eval mode."""
    network.eval()
    return torch.cat([network(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


def check_options(temperature: Any, alpha: Any) -> tuple[float, float]:
    """Temperature > 0 and alpha in [0, 1], else a one-line InputError."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise InputError(
            f"Invalid value for `--temperature`: expected a number > 0 such as 4, received {temperature!r}",
            field="--temperature",
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise InputError(
            f"Invalid value for `--alpha`: expected a weight between 0 and 1 such as 0.5, received {alpha!r}",
            field="--alpha",
        )
    return float(temperature), float(alpha)


def student_spec(student: Any, teacher: Spec, *, name: str | None = None) -> Spec:
    """The student's spec: its ``model`` (and ``train`` if given) on the teacher's data and seed.

    ``student`` is a spec file, a dict or a Spec. A ``data`` section that differs from the
    teacher's is refused: the student learns from the teacher's outputs on the teacher's data.
    """
    if isinstance(student, Spec):
        raw: dict[str, Any] = student.to_dict()
    elif isinstance(student, dict):
        raw = dict(student)
    else:
        raw = read_spec_file(Path(student))
    unknown = sorted(set(raw) - _STUDENT_KEYS)
    if unknown:
        raise SpecError(
            f"Invalid student spec: unknown section {unknown[0]!r}; expected model and optionally train, name, seed",
            field=f"student.{unknown[0]}",
        )
    if "model" not in raw:
        raise SpecError(
            "Invalid student spec: expected a `model` section with input and layers, received none",
            field="student.model",
        )
    merged = teacher.to_dict()
    merged.update(
        model=raw["model"], name=name or teacher.name, description=raw.get("description", f"student of {teacher.name}")
    )
    if "train" in raw:
        merged["train"] = raw["train"]
    if "seed" in raw:
        merged["seed"] = raw["seed"]
    spec = load_spec(merged)
    if "data" in raw:
        if load_spec({**merged, "data": raw["data"]}).data != teacher.data:
            raise SpecError(
                "Invalid value for `student.data`: the student trains on the teacher's data; expected the "
                "teacher's data section or none, received a different one",
                field="student.data",
            )
    return spec


def check_student(student: Network, teacher: Network, teacher_ref: str) -> None:
    """The student must read the teacher's inputs and produce its outputs."""
    if tuple(student.input_shape) != tuple(teacher.input_shape):
        raise ShapeError(
            f"Invalid value for `student.model.input`: expected {list(teacher.input_shape)} like the teacher "
            f"{teacher_ref}, received {list(student.input_shape)}",
            field="student.model.input",
        )
    if (
        tuple(student.output_shape) != tuple(teacher.output_shape)
        or student.output_activation != teacher.output_activation
    ):
        raise ShapeError(
            f"Invalid value for `student.model.layers`: expected outputs {list(teacher.output_shape)} "
            f"({teacher.output_activation}) like the teacher {teacher_ref}, received "
            f"{list(student.output_shape)} ({student.output_activation})",
            field="student.model.layers",
        )
