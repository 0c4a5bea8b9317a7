"""An alert of a deployment's replica → at most one retraining job (``POST /v1/internal/.../alerts``).

The replica's monitor POSTs ``{"model", "version", "ref", "window", "alerts", "checks"}``
(``serving/monitor.py``). When a failed check is one the deployment's ``retrain.on`` names, one
job is queued for the deployed version's stored spec with the policy's overrides
(``policy.retrain_spec``); ``JobStore.submit_triggered`` keeps the alert beside it and, under the
store's write lock, refuses a second job while one is queued or running or within ``cooldown_s``,
so replicas alerting at once queue one job between them. The job trains and registers as any job:
a new version of the spec's model name.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import Field

from modelyard._validation import StrictModel, parse_object
from modelyard.errors import ModelyardError, StoreError
from modelyard.monitoring.alerts import CheckName
from modelyard.server.deployments.store import DeploymentStore, row_dict
from modelyard.server.jobs.store import JobStore
from modelyard.server.retrain.policy import RetrainPolicy, retrain_spec
from modelyard.server.tables import JobTriggerRow
from modelyard.store import ModelStore

__all__ = ["Alert", "on_alert"]

log = logging.getLogger(__name__)


class FailedCheck(StrictModel):
    check: CheckName
    message: str = Field(max_length=2000)
    p_value: float | None = None


class Alert(StrictModel):
    """The body a replica's monitor POSTs to its webhook."""

    model: str
    version: int
    ref: str
    window: int = Field(ge=2)
    alerts: list[str]
    checks: list[FailedCheck]


def on_alert(
    deployments: DeploymentStore, jobs: JobStore, name: str, body: Any, *, access: Any, max_attempts: int
) -> dict[str, Any]:
    """Queue the retraining an alert of deployment ``name`` calls for; says what was done and why."""
    alert = parse_object(Alert, body, "a monitoring alert", root="alert")
    row = deployments.get(name)
    if alert.ref != row.model_ref:
        raise StoreError(
            f"Alert for {alert.ref} sent to deployment {name!r}, which serves {row.model_ref}", field="ref"
        )
    out: dict[str, Any] = {"deployment": name, "queued": False, "job": None}
    options = row_dict(row)["options"]
    raw = options.get("retrain")
    if raw is None:
        return out | {"reason": "the deployment has no retrain policy"}
    policy = RetrainPolicy.model_validate(raw)
    matched = [c for c in alert.checks if c.check in policy.on]
    if not matched:
        return out | {"reason": f"no alert of {', '.join(policy.on)} in this window"}
    first = min(matched, key=lambda c: 1.0 if c.p_value is None else c.p_value)  # the strongest evidence
    version = ModelStore(deployments.home).get(row.model_ref)
    try:  # checked at creation; the data may have gone since
        spec = retrain_spec(policy, version, monitor_sample=options.get("monitor_sample", 0), access=access)
    except ModelyardError as exc:
        log.warning("deployment %s: %s alert, but no retraining job can be queued: %s", name, first.check, exc)
        raise
    trigger = JobTriggerRow(
        deployment_id=row.id,
        deployment=name,
        model_ref=row.model_ref,
        check=first.check,
        p_value=first.p_value,
        window=alert.window,
        alert_json=json.dumps([c.model_dump() for c in matched]),
    )
    job, queued = jobs.submit_triggered(spec, trigger=trigger, cooldown_s=policy.cooldown_s, max_attempts=max_attempts)
    if not queued:
        why = (
            f"job {job.id} is {job.status}" if not job.final else f"within cooldown_s {policy.cooldown_s:g} of {job.id}"
        )
        return out | {"job": job.id, "reason": why}
    log.warning("deployment %s: %s alert on %s queued retraining job %s", name, first.check, row.model_ref, job.id)
    return out | {"queued": True, "job": job.id, "reason": f"{first.check} alert"}
