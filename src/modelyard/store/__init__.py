"""The embedded tracking store and model registry (SQLite + an artifact folder).

Everything lives under ``MODELYARD_HOME`` (default ``~/.modelyard``) and is addressed
by run id or ``name:version``, never by a path::

    runs = RunStore()
    run = runs.create(spec.to_dict(), environment(spec.seed, "cpu"))  # modelyard.environment
    runs.start(run.id); runs.log_epoch(run.id, 1, {"loss": 0.4}); ...
    mv = ModelStore().register(spec.name, state_dict=net.state_dict(), spec=..., preprocess=..., metrics=...)
    runs.finish(run.id, summary, model_ref=mv.ref)
"""

from __future__ import annotations

from modelyard.status import Status
from modelyard.store.models import ModelStore
from modelyard.store.paths import home
from modelyard.store.records import ModelVersion, RunRecord
from modelyard.store.runs import RunStore

__all__ = ["RunStore", "ModelStore", "RunRecord", "ModelVersion", "Status", "home"]
