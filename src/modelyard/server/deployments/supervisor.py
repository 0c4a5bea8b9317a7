"""Deployments: model versions served by supervised ``modelyard serve`` processes.

``Supervisor`` owns the replica processes of every deployment. A deployment is created
with its replicas launched at once; a background thread then steps each replica about
once a second (readiness, health, crash → restart with backoff, see ``replicas.py``),
scrapes their ``/metrics`` for request rate and latency, and writes what it saw to the
deployment's row when it changes. The row's ``desired`` state survives the server: on
``start()`` every deployment that should run is brought back up (after stopping the
replicas a dead server may have left behind). ``stop()`` (server shutdown) stops the
processes but keeps ``desired``; ``delete`` stops them and removes the deployment.

A deployment with ``engine: ray`` runs as a Ray Serve application instead (``ray_engine.py``):
Ray restarts and scales its replicas, the supervisor reads its status, and predictions go to
Ray's HTTP proxy (127.0.0.1:``ray_port``) under the route prefix ``/NAME``.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelyard.errors import DeploymentUnavailableError, InvalidRequestError, ModelyardError, StoreError
from modelyard.server.deployments.metrics import summarize
from modelyard.server.deployments.ray_engine import RayLive, require_ray
from modelyard.server.deployments.replicas import Replica, ReplicaConfig, stop_all, stop_orphan
from modelyard.server.deployments.request import DeploymentRequest
from modelyard.server.deployments.store import DeploymentStore, row_dict
from modelyard.server.tables import DeploymentRow
from modelyard.store import ModelStore
from modelyard.store.refs import parse_ref

__all__ = ["Supervisor", "DeploymentRequest"]

log = logging.getLogger(__name__)


@dataclass
class _Live:
    """The running part of one deployment."""

    name: str
    ref: str
    replicas: list[Replica]
    restarts_before: int  # counted by earlier server processes
    turn: itertools.count = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    recorded: tuple[Any, ...] = ()

    def status(self) -> str:
        states = [r.state for r in self.replicas]
        if all(s == "running" for s in states):
            return "running"
        if "running" in states:
            return "degraded"
        if all(s == "failed" for s in states):
            return "failed"
        return "degraded" if any(r.restarts or r.failures for r in self.replicas) else "starting"

    def restarts(self) -> int:
        return self.restarts_before + sum(r.restarts for r in self.replicas)

    def error(self) -> str | None:
        return next((f"replica {r.index}: {r.error}" for r in self.replicas if r.state != "running" and r.error), None)


class Supervisor:
    """Starts, watches, restarts and stops the serving processes of every deployment."""

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        poll_s: float = 1.0,
        scrape_s: float = 2.0,
        grace_s: float = 10.0,
        replica_options: Mapping[str, Any] | None = None,
        alert_url: str | None = None,
        data_access: Any = None,
        ray_port: int = 8000,
    ) -> None:
        self.home = Path(home)
        self.host = host
        self.store = DeploymentStore(self.home)
        self.poll_s, self.scrape_s, self.grace_s = poll_s, scrape_s, grace_s
        self.replica_options = dict(replica_options or {})  # ReplicaConfig fields (tests shorten timeouts)
        # Replicas accept only this key, so other local users cannot use them directly.
        self.api_key = secrets.token_urlsafe(32)
        # A deployment with `retrain` gets its replicas' alerts at `alert_url` (the control plane's
        # base URL) + /v1/internal/deployments/NAME/alerts, sent with this key (server/retrain).
        self.alert_url = alert_url
        self.alert_key = secrets.token_urlsafe(32)
        self.data_access = data_access  # the server's data rule, which a retraining job's spec must follow
        self.ray_port = ray_port  # where Ray Serve's HTTP proxy listens (engine ray deployments)
        self._live: dict[str, _Live | RayLive] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_scrape = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Bring back every deployment whose desired state is running; start polling."""
        for row in self.store.list(desired="running"):
            for replica in _recorded_replicas(row):
                stop_orphan(replica.get("pid", -1), replica.get("port", -1))
            try:
                self._version(row.model_ref)
                self._launch(row)
            except ModelyardError as exc:  # its version is gone, or engine ray without the extra
                self.store.update(row.name, status="failed", error=f"cannot restore: {exc.message}")
        self._ensure_polling()

    def stop(self) -> None:
        """Stop polling and every replica (SIGTERM, SIGKILL after ``grace_s``); desired states stay."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            lives, self._live = list(self._live.values()), {}
        for live in lives:
            if isinstance(live, RayLive):
                live.stop()
                continue
            with live.lock:
                live.closed = True
        stop_all([r for live in lives if isinstance(live, _Live) for r in live.replicas], self.grace_s)
        for live in lives:
            self.store.update(live.name, status="stopped", restarts=live.restarts(), state={"replicas": []})
        self._stopping.clear()

    # -- API ---------------------------------------------------------------------------------
    def create(self, body: Any) -> dict[str, Any]:
        """Validate, resolve the model to an explicit ``name:N``, record and launch."""
        request = body if isinstance(body, DeploymentRequest) else DeploymentRequest.parse(body)
        version = self._version(request.model)
        if request.retrain is not None and getattr(version, "is_pipeline", False):
            raise InvalidRequestError(
                f"Invalid value for `retrain`: {version.ref} is a voice pipeline; retrain its intent model's deployment",
                field="retrain",
            )
        if request.engine == "ray":
            require_ray()  # without the extra: one line naming modelyard[ray], before anything is stored
        if request.retrain is not None:  # a policy that could not queue its job is refused before anything is stored
            from modelyard.server.retrain.policy import retrain_spec

            retrain_spec(request.retrain, version, monitor_sample=request.monitor_sample, access=self.data_access)
        row = self.store.create(request, version.ref)
        self._launch(row)
        self._ensure_polling()
        return self.describe(request.name)

    def list(self) -> list[dict[str, Any]]:
        return [self._describe(row) for row in self.store.list()]

    def _version(self, ref: str) -> Any:
        """The model version ``ref`` names, or the voice pipeline version of that name (docs/voice.md):
        its replicas run the same `modelyard serve`, which serves either."""
        from modelyard.store.pipelines import PipelineStore

        name = ref.split(":", 1)[0].split("@", 1)[0]
        pipelines = PipelineStore(self.home)
        if pipelines.exists(name) and name not in ModelStore(self.home).names():
            return pipelines.get(ref, field="model")
        return ModelStore(self.home).get(ref)

    def describe(self, name: str) -> dict[str, Any]:
        return self._describe(self.store.get(name))

    def delete(self, name: str) -> dict[str, Any]:
        """Stop the replicas and remove the deployment; returns its last state."""
        row = self.store.get(name)
        self.store.update(name, desired="stopped")
        with self._lock:
            live = self._live.pop(name, None)
        if isinstance(live, RayLive):
            live.stop()
        elif live is not None:
            with live.lock:
                live.closed = True
            stop_all(live.replicas, self.grace_s)
        self.store.delete(name)
        out = self._describe(row)
        return out | {"desired": "stopped", "status": "stopped", "replicas": []}

    def targets(self, name: str, action: str = "predict") -> tuple[list[str], str]:
        """Base URLs of the ready replicas, starting with the next in turn, and the path of
        ``action`` (predict or explain) on the deployed version."""
        with self._lock:
            live = self._live.get(name)
        if live is None:
            row = self.store.get(name)  # NotFoundError for an unknown name
            raise DeploymentUnavailableError(
                f"Deployment {name!r} is {row.status}: no replica is serving ({row.error or 'not started by this server'})"
            )
        pinned = parse_ref(live.ref)  # always NAME:N: create() resolved aliases and bare names
        path = f"/v1/models/{pinned.name}/versions/{pinned.version}/{action}"
        if isinstance(live, RayLive):  # Ray's proxy picks the replica (and resends to another if one dies)
            if live.url is None or live.running == 0:
                raise DeploymentUnavailableError(
                    f"Deployment {name!r} is {live.status()} on Ray Serve: no replica is serving"
                    + (f" ({live.error()})" if live.error() else "; retry in a few seconds")
                )
            return [live.url], path
        ready = [r.base_url for r in live.replicas if r.state == "running"]
        if not ready:
            raise DeploymentUnavailableError(
                f"Deployment {name!r} is {live.status()}: no replica is ready yet"
                + (f" ({live.error()})" if live.error() else "; retry in a few seconds")
            )
        first = next(live.turn) % len(ready)
        return ready[first:] + ready[:first], path

    def monitor_targets(self, name: str, replica: int | None = None) -> tuple[list[tuple[int, str]], str]:
        """The running replicas (index, base URL) in index order, or only ``replica``, and the version's path.

        The deployment must log requests (``monitor_sample`` above 0): each replica keeps its own
        request log of the requests it served, so a report is one replica's.
        """
        row = self.store.get(name)  # NotFoundError for an unknown name
        sample = row_dict(row)["options"].get("monitor_sample") or 0
        if sample <= 0:
            raise StoreError(
                f"Deployment {name!r} is not monitored: create it with monitor_sample above 0 "
                f"(modelyard deployments create {name} {row.model_ref} --monitor-sample 0.1)",
                field="monitor_sample",
            )
        if replica is not None and not 0 <= replica < row.replicas:
            raise InvalidRequestError(
                f"Invalid value for `replica`: expected a replica index from 0 to {row.replicas - 1}, received {replica}",
                field="replica",
            )
        with self._lock:
            live = self._live.get(name)
        replicas = [] if not isinstance(live, _Live) else [r for r in live.replicas if replica in (None, r.index)]
        ready = [(r.index, r.base_url) for r in replicas if r.state == "running"]
        if not ready:
            if replica is not None and replicas:
                raise DeploymentUnavailableError(
                    f"Replica {replica} of deployment {name!r} is {replicas[0].state}: retry in a few seconds"
                )
            status = live.status() if live is not None else row.status
            raise DeploymentUnavailableError(
                f"Deployment {name!r} is {status}: no replica is running; retry in a few seconds"
            )
        pinned = parse_ref(row.model_ref)
        return ready, f"/v1/models/{pinned.name}/versions/{pinned.version}"

    # -- internals ---------------------------------------------------------------------------
    def _launch(self, row: DeploymentRow) -> None:
        options = row_dict(row)["options"]
        if options.get("engine") == "ray":
            self._launch_ray(row, options)
            return
        if options.pop("retrain", None) is not None and self.alert_url is not None:
            options["monitor_webhook"] = f"{self.alert_url}/v1/internal/deployments/{row.name}/alerts"
            options["webhook_token"] = self.alert_key
        config = ReplicaConfig(
            ref=row.model_ref,
            home=self.home,
            api_key=self.api_key,
            host=self.host,
            log_dir=self.home / "server" / "deployments" / row.name,
            **options,
            **self.replica_options,
        )
        now = time.monotonic()
        live = _Live(
            name=row.name,
            ref=row.model_ref,
            restarts_before=row.restarts,
            replicas=[Replica(index=i, config=config) for i in range(row.replicas)],
        )
        for replica in live.replicas:
            replica.launch(now)
        with self._lock:
            self._live[row.name] = live
        with live.lock:
            self._record(live)

    def _launch_ray(self, row: DeploymentRow, options: dict[str, Any]) -> None:
        from modelyard.serving.config import ServeConfig

        request = DeploymentRequest.parse(
            {"name": row.name, "model": row.model_ref, "replicas": row.replicas, **options}
        )
        config = ServeConfig.make(
            host=self.host,
            port=self.ray_port,
            api_key=self.api_key,
            max_batch_size=request.max_batch_size,
            max_wait_ms=request.max_wait_ms,
            backend=request.backend,
            **{k: v for k, v in self.replica_options.items() if k in ("data_dirs", "max_data_mb")},
        )
        require_ray()
        live = RayLive(row.name, row.model_ref, self.home, config, request.ray_options(), restarts_before=row.restarts)
        with self._lock:
            self._live[row.name] = live
        live.launch()
        with live.lock:
            self._record(live)

    def _ensure_polling(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._poll_loop, name="modelyard-supervisor", daemon=True)
            self._thread.start()

    def _poll_loop(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(2.0, connect=0.5)) as http:
            while not self._stopping.wait(self.poll_s):
                self.poll_once(http)

    def poll_once(self, http: httpx.Client) -> None:
        """One round over every replica (public so tests can drive the supervisor step by step)."""
        now = time.monotonic()
        scrape = now - self._last_scrape >= self.scrape_s
        if scrape:
            self._last_scrape = now
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            with live.lock:
                if live.closed:
                    continue
                if isinstance(live, RayLive):
                    try:
                        live.step()
                    except Exception:  # a lost cluster is reported by the next step that works
                        log.exception("reading the Ray Serve status of %s", live.name)
                    self._record(live)
                    continue
                for replica in live.replicas:
                    try:
                        replica.step(http, now)
                        if scrape:
                            replica.scrape(http, now)
                    except Exception:  # one replica's surprise must not stop the supervision of the rest
                        log.exception("supervising replica %d of %s", replica.index, live.name)
                self._record(live)

    def _record(self, live: _Live | RayLive) -> None:
        """Write status, restarts, error and pids/ports to the row when they changed."""
        procs = live.replicas if isinstance(live, _Live) else []  # Ray's replicas are Ray's to stop
        replicas = [{"pid": r.proc.pid, "port": r.port} for r in procs if r.proc is not None]
        seen = (live.status(), live.restarts(), live.error(), tuple((p["pid"], p["port"]) for p in replicas))
        if seen != live.recorded:
            live.recorded = seen
            self.store.update(live.name, status=seen[0], restarts=seen[1], error=seen[2], state={"replicas": replicas})

    def _describe(self, row: DeploymentRow) -> dict[str, Any]:
        out = row_dict(row)
        with self._lock:
            live = self._live.get(row.name)
        now = time.monotonic()
        out["engine"] = out["options"].get("engine", "local")
        if isinstance(live, RayLive):  # request rate and latency are in Ray's own metrics, not scraped here
            out |= {
                "status": live.status(),
                "restarts": live.restarts(),
                "error": live.error(),
                "replicas": live.describe_replicas(),
                "replica_range": [live.options.min_replicas, live.options.max_replicas],
                "metrics": summarize([]),
            }
        elif live is not None:
            out |= {
                "status": live.status(),
                "restarts": live.restarts(),
                "error": live.error(),
                "replicas": [r.describe(now) for r in live.replicas],
                "metrics": summarize(r.metrics for r in live.replicas),
            }
        else:
            out |= {"replicas": [], "metrics": summarize([])}
        return out | {"endpoint": f"/v1/deployments/{row.name}/predict"}


def _recorded_replicas(row: DeploymentRow) -> list[dict[str, Any]]:
    try:
        found = json.loads(row.state_json or "{}").get("replicas", [])
    except (ValueError, AttributeError):
        return []
    return [
        r for r in found if isinstance(r, dict) and isinstance(r.get("pid"), int) and isinstance(r.get("port"), int)
    ]
