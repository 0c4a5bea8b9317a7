"""A deployment's ``retrain`` section: which alerts queue a retraining job, how often, with what changes.

``RetrainPolicy`` is the body's ``retrain`` (checked with the rest of ``POST /v1/deployments``);
``retrain_spec`` turns it and the deployed version into the job's spec: the version's stored
``spec.json`` (declarative JSON, so nothing stored is executed) with the policy's ``overrides``
applied and the same checks ``POST /v1/jobs`` makes. ``Supervisor.create`` calls it before the
deployment is recorded, so a policy that could not queue a job is refused up front.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.errors import ModelyardError, SpecError
from modelyard.monitoring.alerts import CHECKS, CheckName

__all__ = ["RetrainPolicy", "retrain_spec"]


class RetrainPolicy(StrictModel):
    """``retrain`` of ``POST /v1/deployments``."""

    on: list[CheckName] = Field(min_length=1, description="the checks whose alert queues a job: " + ", ".join(CHECKS))
    cooldown_s: float = Field(
        3600.0, ge=0, description="at most one job per this many seconds (and none while one runs)"
    )
    overrides: list[str] = Field([], description="`--set` overrides of the stored spec, e.g. train.epochs=5")


def retrain_spec(policy: RetrainPolicy, version: Any, *, monitor_sample: float, access: Any) -> dict[str, Any]:
    """The resolved spec a job retraining ``version`` (a ``ModelVersion``) runs; a 4xx naming the field if none.

    ``access`` is the server's data rule (``ServerConfig.data_access``), as for a submitted job.
    """
    from modelyard.server.jobs.submit import JobRequest, check_spec

    if monitor_sample <= 0:
        raise SpecError(
            "Invalid value for `retrain`: expected a deployment with monitor_sample above 0 (its monitoring "
            f"alerts queue the retraining), received monitor_sample {monitor_sample:g}",
            field="retrain",
        )
    try:
        return check_spec(JobRequest(spec=version.load_spec(), overrides=policy.overrides), access)
    except ModelyardError as exc:
        raise type(exc)(
            f"Invalid value for `retrain.overrides`: {version.ref} cannot be retrained from its stored spec "
            f"with them: {exc.message}",
            field="retrain.overrides",
        ) from None
