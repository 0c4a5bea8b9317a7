"""The running part of an ``engine: ray`` deployment: one Ray Serve application per deployment.

``RayLive`` is what ``_Live`` (supervisor.py) is for supervised processes: the supervisor launches
it, steps it about once a second and describes it. Launching deploys the application
``modelyard-NAME`` (``serving/ray_serve.py``: the ``modelyard serve`` app as Ray Serve replicas)
under the route prefix ``/NAME`` of Ray's HTTP proxy, in a thread (Ray blocks until the replicas
are ready); Ray itself restarts replicas that die and scales them in the deployment's range, so a
step only reads ``serve.status()``. The control plane joins the local Ray cluster
(``RAY_ADDRESS``, else a new local one) on the first ``engine: ray`` deployment.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.errors import ModelyardError, ServerUnavailableError

__all__ = ["RayLive", "require_ray"]

log = logging.getLogger(__name__)

# Ray Serve's application status → the deployment status the control plane reports.
_STATUS = {"RUNNING": "running", "DEPLOYING": "starting", "UNHEALTHY": "degraded", "DEPLOY_FAILED": "failed"}


def require_ray() -> None:
    """Join (or start) the Ray cluster; without the extra, a one-line error naming ``modelyard[ray]``."""
    from modelyard.serving.ray_serve import ray_serve

    ray_serve("A deployment with engine ray")
    import ray

    if not ray.is_initialized():
        try:
            ray.init(include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, OSError, ValueError) as exc:  # e.g. an unreachable RAY_ADDRESS
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServerUnavailableError(
                f"Cannot start or join a Ray cluster for engine ray: {first}", field="engine"
            ) from None


@dataclass
class RayLive:
    """One deployment's Ray Serve application, as the supervisor sees it."""

    name: str
    ref: str
    home: Path
    config: Any  # ServeConfig of the replicas (host and port of Ray's proxy, the replicas' key)
    options: Any  # RayServeOptions
    restarts_before: int = 0
    state: str = "starting"
    failure: str | None = None
    running: int = 0  # replicas Ray Serve reports running
    url: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    recorded: tuple[Any, ...] = ()

    @property
    def app_name(self) -> str:
        return f"modelyard-{self.name}"

    def launch(self) -> None:
        threading.Thread(target=self._deploy, name=f"modelyard-ray-{self.name}", daemon=True).start()

    def _deploy(self) -> None:
        from modelyard.serving.ray_serve import deploy

        try:
            url = deploy(
                [self.ref],
                self.config,
                self.options,
                home=self.home,
                app_name=self.app_name,
                route_prefix=f"/{self.name}",
            )
        except ModelyardError as exc:
            self.state, self.failure = "failed", exc.message
            return
        except Exception as exc:  # Ray's own failures (a replica that cannot start, a lost cluster)
            log.exception("deploying %s on Ray Serve", self.name)
            self.state, self.failure = "failed", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            return
        with self.lock:
            if self.closed:  # deleted while Ray was starting it
                self._undeploy()
                return
            self.url = url
        self.step()

    def step(self) -> None:
        """Read the application's status and running replicas from Ray Serve."""
        if self.url is None:
            return
        from ray import serve

        app = serve.status().applications.get(self.app_name)
        if app is None:
            self.state, self.failure, self.running = "failed", "the Ray Serve application is gone", 0
            return
        self.state = _STATUS.get(str(getattr(app.status, "value", app.status)), "degraded")
        self.failure = app.message or None if self.state != "running" else None
        self.running = sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())

    def stop(self) -> None:
        """Delete the application (Ray drains its replicas); the proxy stays for the others."""
        with self.lock:
            self.closed = True
            if self.url is not None:
                self._undeploy()
                self.url = None
        self.state = "stopped"

    def _undeploy(self) -> None:
        from modelyard.serving.ray_serve import undeploy

        try:
            undeploy(self.app_name)
        except Exception:  # a cluster already gone has nothing left to stop
            log.exception("deleting the Ray Serve application of %s", self.name)

    # -- what the supervisor reports ---------------------------------------------------------
    def status(self) -> str:
        return self.state

    def restarts(self) -> int:
        return self.restarts_before  # Ray restarts its replicas itself and does not count them here

    def error(self) -> str | None:
        return self.failure

    def describe_replicas(self) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "state": "running",
                "pid": None,
                "port": self.config.port,
                "restarts": 0,
                "error": None,
                "requests_total": 0,
                "uptime_s": None,
            }
            for i in range(self.running)
        ]
