"""Distillation: the loss against a hand-written reference; student specs checked before training."""

from __future__ import annotations

import math

import pytest
import torch

from modelyard.compression import distill as kd
from modelyard.errors import InputError, ShapeError, SpecError
from modelyard.nn import build_model
from modelyard.spec import load_spec
from tests.support.compression import digits_spec, student


def _reference(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, temperature: float, alpha: float) -> float:
    """Hinton et al. 2015 written out per sample with plain math: α·T²·KL(p_t‖p_s) + (1−α)·CE."""
    total = 0.0
    for row_s, row_t, label in zip(s.tolist(), t.tolist(), y.tolist()):

        def softmax(row: list[float], temp: float) -> list[float]:
            m = max(row)
            e = [math.exp((v - m) / temp) for v in row]
            return [v / sum(e) for v in e]

        ps, pt = softmax(row_s, temperature), softmax(row_t, temperature)
        kl = sum(q * (math.log(q) - math.log(p)) for p, q in zip(ps, pt))
        ce = -math.log(softmax(row_s, 1.0)[label])
        total += alpha * temperature**2 * kl + (1 - alpha) * ce
    return total / len(y)


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (3.0, 1.0)])
def test_kd_loss_equals_the_hand_written_reference(temperature: float, alpha: float) -> None:
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 4, generator=gen) * 3, torch.randn(6, 4, generator=gen) * 3
    y = torch.randint(0, 4, (6,), generator=gen)
    got = kd.kd_loss(s, t, y, temperature=temperature, alpha=alpha)
    assert got.item() == pytest.approx(_reference(s, t, y, temperature, alpha), rel=1e-5, abs=1e-6)
    packed = kd.packed_kd_loss(temperature=temperature, alpha=alpha)(s, kd.pack_targets(t, y))
    assert torch.equal(packed, got)


def test_kd_loss_gradient_reaches_the_student_only() -> None:
    s = torch.randn(3, 5, requires_grad=True)
    t = torch.randn(3, 5)
    kd.kd_loss(s, t, torch.tensor([0, 1, 2]), temperature=2.0, alpha=0.5).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "temperature,alpha,field",
    [
        (0, 0.5, "--temperature"),
        (-1, 0.5, "--temperature"),
        (2, 1.5, "--alpha"),
        (2, -0.1, "--alpha"),
        ("x", 0.5, "--temperature"),
    ],
)
def test_bad_temperature_or_alpha_is_a_one_line_error(temperature: object, alpha: object, field: str) -> None:
    with pytest.raises(InputError) as err:
        kd.check_options(temperature, alpha)
    assert err.value.field == field and "\n" not in err.value.message


def _teacher():
    spec = load_spec(digits_spec())
    return spec, build_model(spec.model, loss=spec.train.loss.type)


def test_student_spec_takes_the_teachers_data_and_its_own_model() -> None:
    spec, teacher = _teacher()
    s = kd.student_spec(student(hidden=12), spec)
    assert s.data == spec.data and s.seed == spec.seed and s.name == spec.name
    assert s.model.layers[0].options["units"] == 12
    kd.check_student(build_model(s.model, loss="cross_entropy"), teacher, "digits:1")  # fits: no error


def test_student_with_the_wrong_input_shape_is_refused() -> None:
    spec, teacher = _teacher()
    s = kd.student_spec(student(inputs=100), spec)
    with pytest.raises(ShapeError) as err:
        kd.check_student(build_model(s.model, loss="cross_entropy"), teacher, "digits:1")
    assert (
        err.value.field == "student.model.input"
        and "expected [64]" in err.value.message
        and "[100]" in err.value.message
    )


def test_student_with_the_wrong_number_of_classes_is_refused() -> None:
    spec, teacher = _teacher()
    s = kd.student_spec(student(classes=7), spec)
    with pytest.raises(ShapeError, match=r"expected outputs \[10\].*received \[7\]"):
        kd.check_student(build_model(s.model, loss="cross_entropy"), teacher, "digits:1")


def test_student_spec_with_other_data_or_unknown_sections_is_refused() -> None:
    spec, _ = _teacher()
    other = {**student(), "data": {"source": "xor"}}
    with pytest.raises(SpecError, match="trains on the teacher's data"):
        kd.student_spec(other, spec)
    with pytest.raises(SpecError, match="unknown section 'layers'"):
        kd.student_spec({"layers": []}, spec)
    with pytest.raises(SpecError, match="expected a `model` section"):
        kd.student_spec({"train": {"loss": "cross_entropy"}}, spec)
    same_data = {**student(), "data": digits_spec()["data"]}
    assert kd.student_spec(same_data, spec).data == spec.data
