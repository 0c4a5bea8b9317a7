"""Hyperparameter search over one spec (``modelyard tune``): Optuna underneath, each trial a run.

``api`` (``modelyard.tune``), ``space`` (``--search`` parsing), ``config`` (the ``tune:`` section),
``trial`` (one trial through ``workflow.train``), ``study`` and ``storage`` (the study in the
store's database), ``strategies`` (samplers, pruners), ``report`` (``tune show``). Optuna is the
``tune`` extra and is imported only when a tune runs.
"""

from __future__ import annotations

from modelyard._lazy import lazy_attributes

__all__ = ["tune", "TuneResult", "describe_study"]

__getattr__, __dir__ = lazy_attributes(
    globals(),
    {"tune": "modelyard.tuning.api", "TuneResult": "modelyard.tuning.api", "describe_study": "modelyard.tuning.report"},
)
