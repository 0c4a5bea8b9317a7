"""What a tune is: the ``tune:`` section of a spec file, the REST body's options, ``modelyard.tune``'s arguments.

All three meet in ``TuneConfig`` (one validation, one set of defaults). Options given on the
command line or as arguments replace the section's; ``metric`` defaults to the spec's early
stopping monitor (else ``val_loss``) and ``direction`` follows it as early stopping's ``auto``
does (``max`` for accuracy-like names).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from modelyard._validation import StrictModel, spec_error_from
from modelyard.errors import SpecError
from modelyard.metrics import metric_name
from modelyard.registry import closest
from modelyard.spec import Spec
from modelyard.training.early_stopping import resolve_mode

__all__ = ["TuneConfig", "tune_config", "reported_metrics", "check_metric", "resolved"]

_STUDY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class TuneConfig(StrictModel):
    """``tune:`` — the search space and how it is searched."""

    search: dict[str, str | list[Any]] = {}
    trials: int = Field(20, ge=1, le=10_000)
    metric: str | None = None
    direction: Literal["min", "max", "auto"] = "auto"
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    study: str | None = Field(None, pattern=_STUDY_PATTERN)


def tune_config(section: Any, **given: Any) -> TuneConfig:
    """The ``tune:`` section (a mapping or None) with the options ``given`` (None = not given) laid over it."""
    if section is not None and not isinstance(section, dict):
        raise SpecError(
            f"Invalid value for `tune`: expected a mapping of tune options, received {type(section).__name__}",
            field="tune",
        )
    data = dict(section or {})
    for key, value in given.items():
        if value is None or (key == "search" and not value):
            continue
        data[key] = value
    try:
        return TuneConfig.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from(exc, prefix="tune") from None


def reported_metrics(spec: Spec) -> list[str]:
    """The keys every epoch of a run of ``spec`` reports (``fit``'s history rows), numbers only."""
    names = ["loss", *(metric_name(m) for m in spec.train.metrics)]
    val = [f"val_{n}" for n in names] if spec.data.validation > 0 else []
    return [*names, *val, "lr", "time_s", "samples_per_s"]


def check_metric(spec: Spec, metric: str) -> str:
    """``metric`` if the runs of ``spec`` report it per epoch; a one-line SpecError naming what they report."""
    keys = reported_metrics(spec)
    if metric in keys:
        return metric
    if metric.startswith("val_") and spec.data.validation == 0 and metric.removeprefix("val_") in keys:
        hint = "; the spec holds out no validation split: set data.validation (e.g. 0.15)"
    else:
        near = closest(metric, keys)
        hint = f"; did you mean {near!r}?" if near else ""
    raise SpecError(
        f"Invalid value for `metric`: expected a metric the runs of this spec report per epoch "
        f"({', '.join(keys)}), received {metric!r}{hint}",
        field="metric",
    )


def resolved(config: TuneConfig, spec: Spec) -> tuple[str, Literal["min", "max"]]:
    """The metric (checked) and direction of ``config`` for ``spec``."""
    early = spec.train.early_stopping
    metric = config.metric or (early.monitor if early is not None else "val_loss")
    check_metric(spec, metric)
    direction = resolve_mode(metric, config.direction)
    return metric, direction
