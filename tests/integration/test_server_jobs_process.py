"""A real `modelyard server` with a worker process: submit → train → register through the
API (live events) and through `modelyard jobs`, cancel, and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
import yaml

from modelyard import workflow  # noqa: E402
from modelyard.store import ModelStore, RunStore  # noqa: E402
from tests.support.cli import run_cli  # noqa: E402
from tests.support.server_process import Server, free_port, spec, start_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("jobs") / "home"
    data = tmp_path_factory.mktemp("data")
    srv = start_server(
        home,
        *("--workers", "1", "--lease-s", "3", "--heartbeat-s", "0.5", "--reap-interval-s", "0.5"),
        *("--data-dir", str(data)),
    )
    srv.home, srv.data = home, data  # type: ignore[attr-defined]
    yield srv
    assert srv.stop() in (0, -15), srv.output()


def events(server: Server, job_id: str) -> list[tuple[str, dict]]:
    """Every SSE event of a job, read live until the stream ends."""
    out, name, data = [], None, []
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job_id}/events", timeout=httpx.Timeout(90, connect=5)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif not line and name:
                out.append((name, json.loads("".join(data))))
                name, data = None, []
    return out


def test_submit_train_register_through_the_api_with_live_events(server: Server, tmp_path: Path) -> None:
    body = spec("api", n=2000, epochs=3)
    job = server.submit({"spec": body})
    seen = events(server, job["id"])

    statuses = [data["status"] for name, data in seen if name == "status"]
    assert statuses[0] in ("queued", "running") and "running" in statuses
    epochs = [data for name, data in seen if name == "epoch"]
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    assert any("epoch 3/3" in data["text"] for name, data in seen if name == "log")
    name, end = seen[-1]
    assert name == "end" and end["status"] == "succeeded" and end["model_ref"] == "api:1"
    assert end["history"] == epochs  # the live epochs are the stored history

    home = server.home  # type: ignore[attr-defined]
    run = RunStore(home).get(end["run_id"])
    assert run.status == "succeeded" and run.model_ref == "api:1" and run.spec == end["spec"]
    # The worker ran `modelyard train`'s path: the same weights as training in this process.
    reference = workflow.train(body, home=tmp_path / "reference", progress=False)
    got = ModelStore(home).get("api:1").load_state_dict()
    want = ModelStore(tmp_path / "reference").get(reference.model_ref).load_state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_the_jobs_cli_submits_waits_lists_shows_and_prints_logs(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(spec("cli", n=2000, epochs=2)))
    url = ("--url", server.url)
    submitted = run_cli("jobs", "submit", str(path), "--set", "train.lr=0.02", "--wait", *url)
    assert submitted.code == 0, submitted.err
    assert "epoch 2  loss" in submitted.out and "succeeded: registered model cli:1" in submitted.out
    job_id = submitted.out.split()[1]
    assert server.job(job_id)["spec"]["train"]["lr"] == 0.02

    listed = run_cli("jobs", "list", "--json", *url)
    assert job_id in [j["id"] for j in json.loads(listed.out)]
    shown = run_cli("jobs", "show", job_id, *url)
    assert shown.code == 0 and "status=succeeded" in shown.out and "model=cli:1" in shown.out
    logs = run_cli("jobs", "logs", job_id, "--follow", *url)
    assert logs.code == 0 and "epoch 2/2" in logs.out and "job succeeded: cli:1" in logs.out

    bad = run_cli("jobs", "submit", str(path), "--set", "train.lr=-1", *url)
    assert (
        bad.code == 2
        and bad.err.strip() == "error: Invalid value for `train.lr`: expected a number > 0, received -1 (int)"
    )
    unknown = run_cli("jobs", "show", "j-20990101-abcdef", *url)
    assert unknown.code == 4 and unknown.err.startswith("error: Unknown job")


def test_cancelling_a_running_job_stops_it_and_registers_nothing(server: Server) -> None:
    job = server.submit({"spec": spec("cancel", epochs=50)})
    server.wait_epoch(job["id"], 1)
    result = run_cli("jobs", "cancel", job["id"], "--url", server.url)
    assert result.code == 0 and "cancel requested" in result.out
    done = server.wait_job(job["id"], timeout=10)
    assert done["status"] == "cancelled" and done["error"] == "cancelled by user"
    assert done["progress"]["epoch"] < 50
    home = server.home  # type: ignore[attr-defined]
    assert RunStore(home).get(done["run_id"]).status == "cancelled"
    assert ModelStore(home).for_run(done["run_id"]) is None


def test_no_server_is_one_line_saying_how_to_start_one() -> None:
    result = run_cli("jobs", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.code == 7
    assert result.err.count("\n") == 1 and "start one with `modelyard server`" in result.err


def test_jobs_read_data_files_only_under_the_servers_data_folders(server: Server, tmp_path: Path) -> None:
    data = server.data  # type: ignore[attr-defined]
    rows = "a,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(40))
    (data / "inside.csv").write_text(rows)
    (tmp_path / "outside.csv").write_text(rows)
    body = {**spec("files", epochs=1), "model": {"input": [1], "layers": [{"dense": 1}]}}
    body["data"] = {"source": "csv", "path": "inside.csv", "target": "y"}  # relative: in the data folder
    done = server.wait_job(server.submit({"spec": body})["id"], timeout=60)
    assert done["status"] == "succeeded", done  # the worker process was handed the same folders
    outside = {**body, "data": {**body["data"], "path": str(tmp_path / "outside.csv")}}
    r = server.post("/v1/jobs", json={"spec": outside})
    assert r.status_code == 403 and r.json()["message"] == (
        f"data.path: '{tmp_path / 'outside.csv'}' is outside the server's data folders "
        f"(configured: {data.resolve()}; start the server with --data-dir DIR)"
    )
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(body))
    cli = run_cli("jobs", "submit", str(path), "--set", f"data.path={tmp_path / 'outside.csv'}", "--url", server.url)
    assert cli.code != 0 and cli.err.count("\n") == 1 and "outside the server's data folders" in cli.err
