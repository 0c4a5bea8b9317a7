"""Real `modelyard server` processes for the control-plane integration tests.

Every wait is bounded; a server that does not come up fails the test with its log.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import modelyard

SRC = str(Path(modelyard.__file__).resolve().parents[1])

# 1,500 SGD steps an epoch: about half a second, long enough to kill a worker inside one.
SLOW: dict[str, Any] = {
    "name": "slow",
    "seed": 0,
    "data": {"source": "linear", "n": 6000, "features": 4, "outputs": 1, "noise": 0.1},
    "model": {"input": [4], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 1}]},
    "train": {"loss": "mse", "optimizer": "sgd", "lr": 0.01, "batch_size": 4, "epochs": 5},
}


def spec(name: str = "slow", n: int = 6000, **train: Any) -> dict[str, Any]:
    out = copy.deepcopy(SLOW)
    out["name"], out["data"]["n"] = name, n
    out["train"].update(train)
    return out


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    headers: dict[str, str]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers=self.headers, timeout=30, **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/v1/jobs/{job_id}").json()

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.post("/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def wait_job(
        self, job_id: str, timeout: float, status: tuple[str, ...] = ("succeeded", "failed", "cancelled")
    ) -> dict:
        return wait_for(
            lambda: (j := self.job(job_id))["status"] in status and j, timeout, f"job {job_id} to be {status}"
        )

    def wait_epoch(self, job_id: str, epoch: int, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] == "running" and job["progress"]["epoch"] >= epoch else None

        return wait_for(reached, timeout, f"job {job_id} to finish epoch {epoch}", every=0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _spawn(home: Path, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        # One matplotlib font cache for every server of the session (torchmetrics imports it).
        "MPLCONFIGDIR": str(Path(tempfile.gettempdir()) / "modelyard-test-mplconfig"),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modelyard", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_up(server: Server, probe: str, timeout: float, ready: Callable[[Server], bool] | None = None) -> None:
    def healthy() -> bool:
        if server.proc.poll() is not None:
            pytest.fail(f"server exited with {server.proc.returncode}:\n{server.output()}")
        try:
            return httpx.get(server.url + probe, timeout=1).status_code == 200 and (ready is None or ready(server))
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout, f"the server at {server.url}", every=0.2)
    except BaseException:
        server.proc.kill()
        server.proc.wait(10)
        raise


def start_serve(home: Path, *args: str, headers: dict[str, str] | None = None, timeout: float = 120) -> Server:
    """`python -m modelyard serve ARGS` on a free loopback port; returns once /readyz answers."""
    port = free_port()
    log = home.parent / f"serve-{port}-{time.monotonic_ns()}.log"
    server = Server(
        _spawn(home, ["serve", *args, "--port", str(port)], log), f"http://127.0.0.1:{port}", log, headers or {}
    )
    _wait_up(server, "/readyz", timeout)
    return server


def start_server(
    home: Path,
    *args: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    headers: dict[str, str] | None = None,
    ready: Callable[[Server], bool] | None = None,
    timeout: float = 60,
) -> Server:
    """`python -m modelyard server` on a free port; returns once /healthz answers (and ``ready``)."""
    port = port or free_port(host)
    log = home.parent / f"server-{port}-{time.monotonic_ns()}.log"
    proc = _spawn(home, ["server", "--host", host, "--port", str(port), *args], log)
    server = Server(proc, f"http://{host}:{port}", log, headers or {})
    _wait_up(server, "/healthz", timeout, ready)
    return server


def workers_alive(server: Server) -> bool:
    """True once every worker process of the pool is up (they import torch before claiming)."""
    workers = server.get("/healthz").json()["workers"]
    return bool(workers) and all(w["alive"] for w in workers)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
