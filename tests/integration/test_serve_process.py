"""The server as a real uvicorn process: CLI start, raw-socket limits, SIGTERM drain, workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import modelyard  # noqa: E402
from modelyard.predict import Predictor  # noqa: E402
from tests.support.serving import API_KEY, assert_same_predictions, instances, png, register  # noqa: E402
from tests.support.slow_clients import assert_slow_clients_are_closed  # noqa: E402

SRC = str(Path(modelyard.__file__).resolve().parents[1])
# uvicorn finishes its graceful shutdown, then re-raises the signal so the exit status says why.
STOPPED = (0, -signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], home: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    full_env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(env or {}),
    }
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, *args], env=full_env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server not ready after {seconds} s:\n{log.read_text()}")


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_cli_server_answers_limits_bad_input_and_stops_on_sigterm(
    home: Path, tmp_path: Path, stopper: list[subprocess.Popen]
) -> None:
    register("clf", home)
    register("img", home)
    port, log = free_port(), tmp_path / "server.log"
    proc = start(
        [
            "-m",
            "modelyard.cli.main",
            "serve",
            "clf",
            "img:1",
            "--port",
            str(port),
            "--backend",
            "torch",
            "--max-body-bytes",
            "65536",
        ],
        home,
        log,
    )
    stopper.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, proc, log)

    x = instances("clf", 4)
    r = httpx.post(f"{base}/v1/models/clf/predict", json={"instances": x}, timeout=10)
    assert r.status_code == 200
    assert_same_predictions(r.json()["predictions"], Predictor.load("clf", home=home).records(x))
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    r = httpx.post(
        f"{base}/v1/models/img/predict", content=png(pixels), headers={"content-type": "image/png"}, timeout=10
    )
    assert r.status_code == 200 and r.json()["version"] == 1
    bad = httpx.post(
        f"{base}/v1/models/clf/predict",
        content=b'{"instances": [[NaN, 1, 2, 3]]}',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert bad.status_code == 422 and "NaN" in bad.json()["message"]

    # A declared 1 GB body is refused from the headers: the answer comes without sending it.
    started = time.monotonic()
    reply = raw_request(
        port,
        b"POST /v1/models/clf/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n",
        b'{"instances": [',
    )
    assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 3
    # A chunked body (no length) is cut off once past the limit.
    chunk = b"[1, 2, 3, 4], " * 1000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6))
    reply = raw_request(
        port,
        b"POST /v1/models/clf/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        chunked,
    )
    assert reply.startswith(b"HTTP/1.1 413")
    assert "modelyard_requests_total" in httpx.get(f"{base}/metrics", timeout=10).text

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) in STOPPED


SLOW_SERVER = textwrap.dedent("""
    import sys, time
    from modelyard.predict import Predictor
    from modelyard.serving import ServeConfig
    from modelyard.serving.server import run

    predictor = Predictor.load("clf")
    forward = predictor.predict_tensor
    def slow(features):
        time.sleep(1.5)
        return forward(features)
    predictor.predict_tensor = slow
    run([predictor], ServeConfig(port=int(sys.argv[1]), backend="torch", max_batch_size=2, max_wait_ms=0, timeout_s=30))
""")


def test_sigterm_drains_in_flight_and_queued_requests(
    home: Path, tmp_path: Path, stopper: list[subprocess.Popen]
) -> None:
    register("clf", home)
    script = tmp_path / "slow_server.py"
    script.write_text(SLOW_SERVER)
    port, log = free_port(), tmp_path / "server.log"
    proc = start([str(script), str(port)], home, log)
    stopper.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, proc, log)  # the warm-up forward pass also takes 1.5 s

    xs = [instances("clf", 1, seed=s) for s in range(5)]
    results: dict[int, httpx.Response | Exception] = {}

    def call(i: int) -> None:
        try:
            results[i] = httpx.post(f"{base}/v1/models/clf/predict", json={"instances": xs[i]}, timeout=30)
        except Exception as exc:  # recorded, asserted below
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    # All five sent (a second, even on a loaded machine): two computing, three queued, 4.5 s of work.
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(httpx.TransportError):  # no new connections while draining
        httpx.post(f"{base}/v1/models/clf/predict", json={"instances": xs[0]}, timeout=5)
    for t in threads:
        t.join(30)
    assert proc.wait(30) in STOPPED, log.read_text()
    reference = Predictor.load("clf", home=home)
    for i, x in enumerate(xs):
        response = results[i]
        assert isinstance(response, httpx.Response) and response.status_code == 200, response
        assert_same_predictions(response.json()["predictions"], reference.records(x))


def test_two_workers_with_an_api_key_on_a_public_address(
    home: Path, tmp_path: Path, stopper: list[subprocess.Popen]
) -> None:
    register("reg", home)
    port, log = free_port(), tmp_path / "server.log"
    refused = subprocess.run(
        [sys.executable, "-m", "modelyard.cli.main", "serve", "reg", "--host", "0.0.0.0"],
        env={**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": SRC, "MODELYARD_API_KEY": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "without an API key" in refused.stderr
    proc = start(
        [
            "-m",
            "modelyard.cli.main",
            "serve",
            "reg",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--workers",
            "2",
            "--backend",
            "torch",
            "--header-timeout-s",
            "1",
        ],
        home,
        log,
        env={"MODELYARD_API_KEY": API_KEY},
    )
    stopper.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, proc, log, seconds=90)
    x = instances("reg", 2)
    want = Predictor.load("reg", home=home).records(x)
    auth = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.post("/v1/models/reg/predict", json={"instances": x}).status_code == 401
        for _ in range(6):
            r = http.post("/v1/models/reg/predict", json={"instances": x}, headers=auth)
            assert r.status_code == 200
            assert_same_predictions(r.json()["predictions"], want)
    assert_slow_clients_are_closed(port, seconds=1)  # the deadline reaches uvicorn's spawned workers too
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) in STOPPED


def _serve_process(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "modelyard", "serve", *args, "--backend", "torch"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_serve_checks_every_model_and_its_port_before_announcing_an_address(home: Path) -> None:
    from modelyard.store import ModelStore
    from tests.unit.store.test_checksums import _flip_one_float

    register("clf", home)
    damaged = register("clf", home)
    _flip_one_float(ModelStore(home).get(damaged).path / "weights.safetensors")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases = {
            "unknown ref": (("clf:1", "ghost", "--port", str(free_port())), 4, "ghost"),
            "damaged weights": (("clf:1", damaged, "--port", str(free_port())), 5, "weights.safetensors"),
            "taken port": (("clf:1", "--port", str(taken.getsockname()[1])), 3, "is in use"),
            "two workers, unknown ref": (("ghost", "--workers", "2", "--port", str(free_port())), 4, "ghost"),
            "two workers, damaged weights": (
                (damaged, "--workers", "2", "--port", str(free_port())),
                5,
                "weights.safetensors",
            ),
        }
        for case, (args, code, fragment) in cases.items():
            res = _serve_process(home, *args)
            assert res.returncode == code, (case, res.stderr)
            assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and fragment in res.stderr, (
                case,
                res.stderr,
            )
            assert "http://" not in res.stderr + res.stdout, (case, res.stderr)


def test_the_announced_address_answers_ready_at_once(home: Path, stopper: list) -> None:
    register("clf", home)
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home), "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelyard", "serve", "clf", "--port", str(port), "--backend", "torch"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopper.append(proc)
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()  # blocks until the process announces itself (or exits)
        assert line.startswith(f"modelyard: serving clf on http://127.0.0.1:{port}"), line
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in STOPPED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
