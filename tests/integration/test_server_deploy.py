"""Deployments end to end on a real `python -m modelyard server` process.

submit → train → register → deploy → predict through the API (answers compared with the
in-process Predictor), a crashed replica restarted, a server restart restoring the
deployment, the CLI, and a deployment whose replicas cannot start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.inputs import image_to_array  # noqa: E402
from modelyard.predict import Predictor  # noqa: E402
from modelyard.server.deployments.supervisor import Supervisor  # noqa: E402
from tests.support.console import DIGITS  # noqa: E402
from tests.support.serving import assert_same_predictions, png, register  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], seconds: float = 90.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {seconds:g} s waiting for {what} (last: {last!r})")


class Server:
    """One control-plane process on a free port over ``home``."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**os.environ, "MODELYARD_HOME": str(self.home)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard", "server", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                return self.http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for("the server", up, 60)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.http.close()

    def deployment(self, name: str) -> dict[str, Any]:
        return self.http.get(f"/v1/deployments/{name}").json()

    def running(self, name: str, replicas: int) -> dict[str, Any] | None:
        d = self.deployment(name)
        ready = [r for r in d.get("replicas", []) if r["state"] == "running"]
        return d if d.get("status") == "running" and len(ready) == replicas else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, the server, reaps it on its next poll).
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def server(home: Path, tmp_path: Path) -> Iterator[Server]:
    with Server(home, tmp_path / "server.log") as srv:
        yield srv


def run_cli_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
    )


def train_through_api(srv: Server) -> str:
    job = srv.http.post("/v1/jobs", json={"spec": DIGITS}).json()
    done = wait_for(
        "the job", lambda: (j := srv.http.get(f"/v1/jobs/{job['id']}").json())["status"] in FINAL and j, 120
    )
    assert done["status"] == "succeeded", done
    assert [row["epoch"] for row in done["history"]] == [1, 2, 3]
    return done["model_ref"]


def test_submit_train_register_deploy_predict(server: Server, home: Path) -> None:
    ref = train_through_api(server)
    created = server.http.post(
        "/v1/deployments",
        json={"name": "web", "model": ref.split(":")[0], "replicas": 2, "backend": "torch", "max_batch_size": 16},
    )
    assert created.status_code == 201, created.text
    assert created.json()["model"] == ref  # "name" resolved to the explicit version at creation
    deployment = wait_for("2 running replicas", lambda: server.running("web", 2))
    assert len({r["pid"] for r in deployment["replicas"]}) == 2

    model = Predictor.load(ref, home=home)
    x = np.random.default_rng(0).uniform(0, 16, size=(5, 64)).round(2)
    for _ in range(3):  # every replica answers the same as the model in-process
        answer = server.http.post("/v1/deployments/web/predict", json={"instances": x.tolist()})
        assert answer.status_code == 200, answer.text
        assert_same_predictions(answer.json()["predictions"], model.records(x.astype(np.float32)), atol=1e-5)
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    image = server.http.post(  # the query string reaches the replica too
        "/v1/deployments/web/predict?top_k=2", content=png(pixels), headers={"content-type": "image/png"}
    )
    assert image.status_code == 200, image.text
    want = model.records(image_to_array(png(pixels), [64])[None])
    (ranked,) = image.json()["predictions"]
    top = ranked.pop("top")
    assert len(top) == 2 and top[0]["label"] == want[0]["label"]
    assert top[0]["probability"] == pytest.approx(max(want[0]["probabilities"]), abs=1e-5)
    assert_same_predictions([ranked], want, atol=1e-5)
    bad = server.http.post("/v1/deployments/web/predict", json={"instances": [[1, 2]]})
    assert bad.status_code == 422 and "expected a list of instances of shape [64]" in bad.json()["message"]

    # Scraped from both replicas' /metrics: every request counted once, both replicas used.
    seen = wait_for(
        "the scraped request count", lambda: (d := server.deployment("web"))["metrics"]["requests_total"] == 5 and d
    )
    assert all(r["requests_total"] >= 2 for r in seen["replicas"])  # round robin
    assert seen["metrics"]["p50_ms"] > 0 and seen["metrics"]["error_rate"] == pytest.approx(0.2, abs=0.01)

    # A replica killed with SIGKILL is restarted on a new process; traffic keeps flowing.
    victim = seen["replicas"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    for _ in range(3):
        assert server.http.post("/v1/deployments/web/predict", json={"instances": x[:1].tolist()}).status_code == 200
    back = wait_for("the restart", lambda: (d := server.running("web", 2)) and d["restarts"] == 1 and d)
    assert victim not in {r["pid"] for r in back["replicas"]}
    assert sorted(r["restarts"] for r in back["replicas"]) == [0, 1]

    pids = [r["pid"] for r in back["replicas"]]
    gone = server.http.delete("/v1/deployments/web")
    assert gone.status_code == 200 and gone.json()["status"] == "stopped"
    wait_for("the replicas to exit", lambda: not any(alive(p) for p in pids), 20)
    assert server.http.get("/v1/deployments/web").status_code == 404


def test_server_restart_restores_deployments_and_cli(home: Path, tmp_path: Path) -> None:
    ref = register("clf", home)
    with Server(home, tmp_path / "server.log") as first:
        env = {"MODELYARD_SERVER_URL": first.url}
        out = run_cli_process(["deployments", "create", "iris", ref, "--backend", "torch"], env)
        assert out.returncode == 0, out.stderr
        assert "iris" in out.stdout and ref in out.stdout
        before = wait_for("the replica", lambda: first.running("iris", 1))
        listed = run_cli_process(["deployments", "list"], env)
        assert listed.returncode == 0 and "iris" in listed.stdout and "running" in listed.stdout
        first.stop()
        assert not alive(before["replicas"][0]["pid"])  # the server's shutdown stopped its replicas
    with Server(home, tmp_path / "server2.log") as second:
        after = wait_for("the restored replica", lambda: second.running("iris", 1))
        assert after["replicas"][0]["pid"] != before["replicas"][0]["pid"]
        answer = second.http.post("/v1/deployments/iris/predict", json={"instances": [[1.0, 2.0, 3.0, 4.0]]})
        assert answer.status_code == 200 and answer.json()["ref"] == ref
        env = {"MODELYARD_SERVER_URL": second.url}
        missing = run_cli_process(["deployments", "show", "iri"], env)
        assert missing.returncode == 4 and "did you mean 'iris'" in missing.stderr
        assert run_cli_process(["deployments", "delete", "iris"], env).returncode == 0
        assert second.http.get("/v1/deployments").json() == {"deployments": []}


def test_replicas_that_cannot_start_end_failed_with_the_reason(home: Path) -> None:
    ref = register("clf", home)
    name, version = ref.split(":")
    weights = home / "artifacts" / "models" / name / version / "weights.safetensors"
    weights.write_bytes(b"not safetensors")
    supervisor = Supervisor(home, poll_s=0.2, replica_options={"max_failures": 2, "backoff_s": (0.1, 0.2)})
    supervisor.start()
    try:
        supervisor.create({"name": "broken", "model": ref, "backend": "torch"})
        failed = wait_for("the failure", lambda: (d := supervisor.describe("broken"))["status"] == "failed" and d, 120)
        assert "gave up after 2 failures" in failed["error"]
        # the replica's own error line: the damaged file fails its registered checksum
        assert f"Model {ref}'s weights.safetensors is not the file registered" in failed["error"]
        assert failed["restarts"] == 1
        with pytest.raises(Exception, match="no replica is ready"):
            supervisor.targets("broken")
    finally:
        supervisor.stop()


def test_a_monitored_deployment_reports_each_replicas_window_and_routes_feedback(server: Server, home: Path) -> None:
    from tests.support.console import train_digits

    ref = train_digits(home)  # trained here: the version has its monitoring reference
    created = server.http.post(
        "/v1/deployments",
        json={
            "name": "mon",
            "model": ref,
            "replicas": 2,
            "backend": "torch",
            "monitor_sample": 1,
            "monitor_window": 20,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["options"]["monitor_sample"] == 1
    wait_for("2 running replicas", lambda: server.running("mon", 2))

    model = Predictor.load(ref, home=home)
    rng = np.random.default_rng(0)
    logged = {0: 0, 1: 0}
    labelled = {0: [0, 0], 1: [0, 0]}  # per replica: right, labelled
    for i in range(4):  # round robin: two requests of 15 instances on each replica
        x = rng.uniform(0, 16, size=(15, 64)).round()
        answer = server.http.post("/v1/deployments/mon/predict", json={"instances": x.tolist()}).json()
        predicted = model.predict(x.astype(np.float32)).argmax(axis=1)
        labels = predicted.copy()
        labels[: 3 * i] = (labels[: 3 * i] + 1) % 10  # 0, 3, 6, 9 wrong
        took = server.http.post(
            "/v1/deployments/mon/feedback", json={"request_id": answer["request_id"], "labels": labels.tolist()}
        )
        assert took.status_code == 200 and took.json()["labels"] == 15, took.text
        replica = int(took.headers["x-modelyard-replica"])  # the one that logged the request
        logged[replica] += 15
        labelled[replica][0] += 15 - 3 * i
        labelled[replica][1] += 15
    assert logged == {0: 30, 1: 30}

    for replica in (0, 1):
        r = server.http.get("/v1/deployments/mon/monitor", params={"window": 30, "replica": replica})
        assert r.status_code == 200 and r.headers["x-modelyard-replica"] == str(replica), r.text
        report = r.json()
        assert (report["ref"], report["window"], report["logged"]) == (ref, 30, 30)
        right, count = labelled[replica]
        assert report["accuracy"] == {"labelled": count, "accuracy": pytest.approx(right / count)}
        assert report["outputs"]["drift"] is True  # uniform noise is not digits
    default = server.http.get("/v1/deployments/mon/monitor", params={"window": 30})
    assert default.headers["x-modelyard-replica"] == "0"
    cli = run_cli_process(
        ["monitor", "mon", "--deployment", "--window", "30", "--json"], {"MODELYARD_SERVER_URL": server.url}
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["accuracy"] == default.json()["accuracy"]

    # The replica's own refusals come back unchanged, as one line.
    too_big = server.http.get("/v1/deployments/mon/monitor", params={"window": 31, "replica": 1})
    assert too_big.status_code == 422 and "at most the 30 instances" in too_big.json()["message"]
    unknown = server.http.post("/v1/deployments/mon/feedback", json={"request_id": "nope", "labels": [1]})
    assert unknown.status_code == 404 and unknown.json()["field"] == "request_id"
