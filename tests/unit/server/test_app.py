"""The control plane app in-process: jobs API (submit/validate/list/show/logs/events/cancel),
error format, and the routers of both halves included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from modelyard.server import ServerConfig, create_server_app  # noqa: E402
from modelyard.server import app as app_module  # noqa: E402
from modelyard.server.jobs.store import JobStore  # noqa: E402
from modelyard.server.jobs.worker import Worker  # noqa: E402
from modelyard.store import RunStore  # noqa: E402
from tests.support.jobs import TINY, resolved, tiny_spec  # noqa: E402

BASE = "http://127.0.0.1:8080"
pytestmark = pytest.mark.anyio


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The server's one data folder (``--data-dir``)."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
async def api(home: Path, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(port=8080, home=home, data_dirs=[data_dir]), start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


def run_queued_job(home: Path) -> str:
    """Train the oldest queued job in this process, as a worker would."""
    worker = Worker(home, lease_s=30, heartbeat_s=1)
    job = worker.leases.claim(worker.worker_id)
    worker.run_job(job)
    return job.id


async def test_health_and_both_halves_of_the_api_are_mounted(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json()["status"] == "ok"
    paths = set((await api.get("/openapi.json")).json()["paths"])
    assert {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/logs",
        "/v1/jobs/{job_id}/cancel",
        "/v1/session",
    } <= paths
    assert {"/v1/runs", "/v1/models", "/v1/deployments"} <= paths


def test_each_subpackage_has_one_routes_module_and_the_app_mounts_every_one() -> None:
    server = Path(app_module.__file__).parent
    assert {m.__name__ for m in app_module._ROUTERS} == {
        f"modelyard.server.{p.parent.name}.routes" for p in server.glob("*/routes.py")
    }
    assert {"jobs", "auth", "deployments", "console"} <= {p.parent.name for p in server.glob("*/routes.py")}
    assert not [p.name for p in server.rglob("*.py") if "routes" in p.stem and p.stem != "routes"]


@pytest.mark.parametrize("form", ["wrapper", "bare-json", "bare-yaml", "yaml-string"])
async def test_submit_accepts_json_and_yaml_and_stores_the_resolved_spec(
    api: httpx.AsyncClient, home: Path, form: str
) -> None:
    spec = tiny_spec()
    if form == "wrapper":
        r = await api.post("/v1/jobs", json={"spec": spec, "overrides": ["train.lr=0.05"], "max_attempts": 5})
    elif form == "bare-json":
        r = await api.post("/v1/jobs", json=spec)
    elif form == "bare-yaml":
        r = await api.post("/v1/jobs", content=yaml.safe_dump(spec), headers={"content-type": "application/yaml"})
    else:
        r = await api.post("/v1/jobs", json={"spec": yaml.safe_dump(spec)})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["attempts"] == 0 and job["submitted_by"] == "local"
    want = resolved(tiny_spec(lr=0.05) if form == "wrapper" else spec)
    assert job["spec"] == want and JobStore(home).get(job["id"]).spec == want
    assert job["max_attempts"] == (5 if form == "wrapper" else 3)
    assert job["progress"] == {"epoch": 0, "epochs": 3, "fraction": 0.0}


def _bad(**changes: object) -> dict:
    spec = tiny_spec()
    for path, value in changes.items():
        section, key = path.split("__")
        spec[section][key] = value
    return spec


@pytest.mark.parametrize(
    ("body", "headers", "status", "field", "message"),
    [
        ({"spec": _bad(train__lr=-1)}, None, 422, "train.lr", "expected a number > 0, received -1"),
        ({"spec": _bad(model__layers=[{"dens": 3}])}, None, 422, "model.layers[0]", "did you mean 'dense'"),
        (
            {"spec": _bad(model__input=[1, 8, 8], model__layers=[{"conv2d": 4, "kernel": 9}, {"dense": 1}])},
            None,
            422,
            "model.layers[0].kernel",
            "no larger than the padded input 8x8",
        ),
        (
            {"spec": {**TINY, "data": {"source": "csv", "path": "missing.csv", "target": "y"}}},
            None,
            422,
            "data.path",
            "does not exist",
        ),
        ({"spec": TINY, "overrides": ["train.epochs"]}, None, 422, "--set", "expected PATH=VALUE"),
        ({"spec": TINY, "max_atempts": 2}, None, 422, "spec", "did you mean 'max_attempts'"),
        (b'{"spec": ', {"content-type": "application/json"}, 422, "body", "Malformed JSON body at line 1"),
        (b"name: [unclosed", {"content-type": "application/yaml"}, 422, "body", "Malformed YAML in `body` at line"),
        (b"a: &x [1]\nb: *x\n", {"content-type": "application/yaml"}, 422, "body", "aliases"),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "body", "expected a mapping"),
        (b"", {"content-type": "application/json"}, 422, "body", "Empty job body"),
        (b"spec", {"content-type": "application/octet-stream"}, 415, "content-type", "Unsupported Content-Type"),
        (b"x" * (4 * 1024 * 1024 + 1), {"content-type": "application/yaml"}, 413, "body", "too large"),
    ],
)
async def test_bad_submissions_are_refused_at_once_naming_the_field(
    api: httpx.AsyncClient, home: Path, body: object, headers: dict | None, status: int, field: str, message: str
) -> None:
    if isinstance(body, bytes):
        r = await api.post("/v1/jobs", content=body, headers=headers)
    else:
        r = await api.post("/v1/jobs", json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["field"] == field and message in answer["message"], answer
    assert "\n" not in answer["message"]
    assert JobStore(home).list() == []  # nothing queued


def _csv_spec(path: str) -> dict:
    return {
        **TINY,
        "data": {"source": "csv", "path": path, "target": "y"},
        "model": {"input": [2], "layers": [{"dense": 1}]},
    }


async def test_a_relative_data_path_is_stored_absolute_within_the_data_folder(
    api: httpx.AsyncClient, data_dir: Path
) -> None:
    (data_dir / "d.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    r = await api.post("/v1/jobs", json=_csv_spec("d.csv"))
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["data"]["source"]["options"]["path"] == str(data_dir.resolve() / "d.csv")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spec": "PATH"}, "data.path"),
        ({"spec": "STORE"}, "data.path"),
        ({"spec": "DEV"}, "data.path"),
        ({"spec": "INSIDE", "overrides": ["data.path=PATH"]}, "data.path"),
        ({"spec": "NPY"}, "data.x_test"),
        ({"spec": "URL"}, "data.url"),
    ],
)
async def test_a_job_may_only_read_under_the_data_folders(
    api: httpx.AsyncClient, home: Path, data_dir: Path, tmp_path: Path, body: dict, field: str
) -> None:
    secret = tmp_path / "secret.csv"  # beside the data folder, not in it
    secret.write_text("k3y\n1\n")
    (data_dir / "in.csv").write_text("a,b,y\n1,2,0\n")
    np.save(data_dir / "x.npy", np.zeros((4, 2), np.float32))
    np.save(data_dir / "y.npy", np.zeros(4, np.int64))
    (data_dir / "mnist").mkdir()
    (home / "server").mkdir(parents=True, exist_ok=True)
    (home / "server" / "session.key").write_text("k3y\n")
    npy = {"source": "npy", "x": str(data_dir / "x.npy"), "y": str(data_dir / "y.npy")}
    specs = {
        "PATH": _csv_spec(str(secret)),
        "STORE": _csv_spec(str(home / "server" / "session.key")),
        "DEV": _csv_spec("/dev/zero"),
        "INSIDE": _csv_spec(str(data_dir / "in.csv")),
        "NPY": {**_csv_spec(""), "data": {**npy, "x_test": str(secret), "y_test": str(data_dir / "y.npy")}},
        "URL": {**_csv_spec(""), "data": {"source": "mnist", "path": str(data_dir / "mnist"), "url": "file:///"}},
    }
    body = {
        **body,
        "spec": specs[body["spec"]],
        "overrides": [o.replace("PATH", str(secret)) for o in body.get("overrides", [])],
    }
    r = await api.post("/v1/jobs", json=body)
    assert r.status_code == 403, r.text
    answer = r.json()
    assert answer["field"] == field and answer["message"].startswith(f"{field}: "), answer
    assert f"configured: {data_dir.resolve()}" in answer["message"] and "k3y" not in answer["message"]
    assert JobStore(home).list() == []  # nothing queued


async def test_list_show_logs_and_events_of_a_finished_job(api: httpx.AsyncClient, home: Path) -> None:
    first = (await api.post("/v1/jobs", json=tiny_spec())).json()
    second = (await api.post("/v1/jobs", json=tiny_spec())).json()
    assert [j["id"] for j in (await api.get("/v1/jobs")).json()["jobs"]] == [second["id"], first["id"]]
    assert "spec" not in (await api.get("/v1/jobs")).json()["jobs"][0]  # lists stay small
    run_queued_job(home)

    assert [j["id"] for j in (await api.get("/v1/jobs", params={"status": "succeeded"})).json()["jobs"]] == [
        first["id"]
    ]
    assert len((await api.get("/v1/jobs", params={"limit": 1})).json()["jobs"]) == 1
    job = (await api.get(f"/v1/jobs/{first['id']}")).json()
    assert job["status"] == "succeeded" and job["model_ref"] == "tiny:1"
    assert job["history"] == json.loads(json.dumps(RunStore(home).get(job["run_id"]).history))
    assert [row["epoch"] for row in job["history"]] == [1, 2, 3]

    logs = await api.get(f"/v1/jobs/{first['id']}/logs")
    assert "epoch 3/3" in logs.text and logs.headers["x-job-status"] == "succeeded"
    assert int(logs.headers["x-next-offset"]) == len(logs.text.encode())
    tail = await api.get(f"/v1/jobs/{first['id']}/logs", params={"offset": logs.headers["x-next-offset"]})
    assert tail.text == "" and tail.headers["x-next-offset"] == logs.headers["x-next-offset"]

    async with api.stream("GET", f"/v1/jobs/{first['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = parse_sse([line async for line in stream.aiter_lines()])
    names = [name for name, _ in events]
    assert names[0] == "status" and names[-1] == "end" and names.count("epoch") == 3 and "log" in names
    assert [data["epoch"] for name, data in events if name == "epoch"] == [1, 2, 3]
    end = events[-1][1]
    assert end["status"] == "succeeded" and end["history"] == job["history"]


def parse_sse(lines: Iterable[str]) -> list[tuple[str, dict]]:
    events, name, data = [], None, []
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and name:
            events.append((name, json.loads("".join(data))))
            name, data = None, []
    return events


async def test_cancel_and_the_error_answers(api: httpx.AsyncClient) -> None:
    job = (await api.post("/v1/jobs", json=tiny_spec())).json()
    r = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = await api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"] == "StoreError"
    missing = await api.get("/v1/jobs/j-20990101-abcdef")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    assert (await api.get("/v1/jobs/j-20990101-abcdef/events")).status_code == 404
    bad = await api.get("/v1/jobs", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["field"] == "query.limit"
    assert (await api.get("/v1/jobs", params={"status": "done"})).status_code == 400


async def test_an_unexpected_fault_is_a_500_without_a_traceback(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(JobStore, "list", boom)
    r = await api.get("/v1/jobs")
    assert r.status_code == 500
    assert r.json() == {
        "error": "InternalError",
        "message": "internal error (RuntimeError); the server log has the details",
    }


def test_the_docs_describe_every_server_option_and_jobs_command() -> None:
    from modelyard.cli.jobs import jobs
    from modelyard.cli.server import server

    doc = (Path(__file__).parents[3] / "docs" / "server.md").read_text()
    options = [opt for param in server.params for opt in getattr(param, "opts", []) if opt.startswith("--")]
    missing = [o for o in options if f"`{o}`" not in doc and o not in ("--help",)]
    assert not missing, f"options of `modelyard server` missing from docs/server.md: {missing}"
    for command in jobs.commands:
        assert f"modelyard jobs {command}" in doc, command
    for command in server.commands["token"].commands:
        assert f"modelyard server token {command}" in doc, command
