"""The registry's routes: aliases (list, set/move, delete), deleting versions and runs, refusals as 4xx, auth on writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from modelyard.cards import model_card
from modelyard.server import ServerConfig, create_server_app
from modelyard.server.auth.tokens import TokenStore
from modelyard.server.deployments.store import DeploymentRequest, DeploymentStore
from modelyard.store import ModelStore, RunStore
from tests.support.cards import front_matter
from tests.support.cli import run_cli
from tests.support.console import train_digits
from tests.support.serving import register

pytestmark = pytest.mark.anyio
PUBLIC = "192.0.2.2"  # TEST-NET-1, as in tests/unit/server/auth


@asynccontextmanager
async def client(home: Path, host: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(host=host, port=8080, home=home), start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8080") as http:
            yield http


async def test_aliases_are_listed_set_moved_and_deleted(home: Path) -> None:
    one, two = register("clf", home, seed=1), register("clf", home, seed=2)
    async with client(home) as http:
        created = await http.put("/v1/models/clf/aliases/production", json={"version": 1})
        assert created.status_code == 200, created.text
        assert (created.json()["model"], created.json()["previous"]) == (one, None)
        moved = (await http.put("/v1/models/clf/aliases/production", json={"version": 2})).json()
        assert (moved["ref"], moved["model"], moved["previous"]) == ("clf@production", two, 1)
        assert ModelStore(home).get("clf").ref == two
        listed = (await http.get("/v1/models/clf/aliases")).json()["aliases"]
        assert [(a["alias"], a["version"]) for a in listed] == [("production", 2)]
        catalog = (await http.get("/v1/models")).json()["models"]
        assert {m["ref"]: (m["kind"], m["aliases"]) for m in catalog} == {
            two: ("trained", ["production"]),
            one: ("trained", []),
        }
        gone = await http.delete("/v1/models/clf/aliases/production")
        assert gone.status_code == 200 and gone.json()["model"] == two
        assert (await http.get("/v1/models/clf/aliases")).json() == {"aliases": []}


async def test_bad_alias_requests_are_one_line_4xx_naming_the_field(home: Path) -> None:
    register("clf", home)
    async with client(home) as http:
        cases = [
            ("PUT", "/v1/models/clf/aliases/Prod", {"version": 1}, 400, "alias"),
            ("PUT", "/v1/models/clf/aliases/latest", {"version": 1}, 400, "alias"),
            ("PUT", "/v1/models/clf/aliases/production", {"version": "1"}, 422, "version"),
            ("PUT", "/v1/models/clf/aliases/production", {"version": True}, 422, "version"),
            ("PUT", "/v1/models/clf/aliases/production", {"version": 0}, 422, "version"),
            ("PUT", "/v1/models/clf/aliases/production", {"version": 1, "force": 1}, 422, "body"),
            ("PUT", "/v1/models/clf/aliases/production", [1], 422, "body"),
            ("PUT", "/v1/models/clf/aliases/production", {"version": 7}, 404, "ref"),
            ("PUT", "/v1/models/nope/aliases/production", {"version": 1}, 404, "ref"),
            ("DELETE", "/v1/models/clf/aliases/production", None, 404, "alias"),
            ("GET", "/v1/models/clff/aliases", None, 404, "name"),
        ]
        for method, path, body, status, field in cases:
            r = await http.request(method, path, json=body)
            assert r.status_code == status, (method, path, body, r.text)
            assert r.json()["field"] == field and "\n" not in r.json()["message"], r.json()
        raw = await http.put("/v1/models/clf/aliases/production", content=b"{not json")
        assert raw.status_code == 400 and raw.json()["field"] == "body"
    assert ModelStore(home).aliases() == []


async def test_a_version_is_deleted_unless_a_deployment_serves_it_or_an_alias_points_to_it(home: Path) -> None:
    one = register("clf", home, seed=1)
    two = register("clf", home, seed=2, lineage={"parent": "clf:1", "operation": "distill"})
    three = register("clf", home, seed=3)
    DeploymentStore(home).create(DeploymentRequest(name="web", model="clf"), three)  # a row, as the supervisor writes
    ModelStore(home).set_alias(one, "production")
    async with client(home) as http:
        served = await http.delete("/v1/models/clf/versions/3", params={"force": "true"})
        assert served.status_code == 409
        assert served.json()["message"] == (
            "Refused to delete clf:3: it is served by deployment web (starting); delete or redeploy that first"
        )
        aliased = await http.delete("/v1/models/clf/versions/1")
        assert aliased.status_code == 409 and "clf@production points to it" in aliased.json()["message"]
        forced = await http.delete("/v1/models/clf/versions/1", params={"force": "true"})
        assert forced.status_code == 200, forced.text
        assert (forced.json()["ref"], forced.json()["aliases"], forced.json()["derived"]) == (
            one,
            ["production"],
            [two],
        )
        assert (await http.delete("/v1/models/clf/versions/1")).status_code == 404
        assert (await http.delete("/v1/models/clf/versions/x")).status_code == 422
        assert (await http.delete("/v1/models/clf/versions/1", params={"force": "maybe"})).status_code == 422
    assert [v.ref for v in ModelStore(home).list()] == [two, three]


async def test_a_finished_run_is_deleted_a_running_one_refused(home: Path) -> None:
    runs = RunStore(home)
    run = runs.create({"name": "clf"})
    runs.start(run.id)
    async with client(home) as http:
        refused = await http.delete(f"/v1/runs/{run.id}")
        assert refused.status_code == 409 and "it is running; cancel it first" in refused.json()["message"]
        runs.finish(run.id, {})
        assert (await http.delete(f"/v1/runs/{run.id}")).json()["id"] == run.id
        assert (await http.delete(f"/v1/runs/{run.id}")).status_code == 404


async def test_writes_need_an_admin_token_off_loopback(home: Path) -> None:
    register("clf", home)
    tokens = TokenStore(home)
    _, admin = tokens.create("admin", "ops")
    _, read = tokens.create("read", "viewer")
    writes = [
        ("PUT", "/v1/models/clf/aliases/production", {"version": 1}),
        ("DELETE", "/v1/models/clf/aliases/production", None),
        ("DELETE", "/v1/models/clf/versions/1", None),
        ("DELETE", "/v1/runs/r-20260101-abcdef", None),
    ]
    async with client(home, host=PUBLIC) as http:
        for method, path, body in writes:
            assert (await http.request(method, path, json=body)).status_code == 401, path
            denied = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {read}"})
            assert denied.status_code == 403 and "needs an admin token" in denied.json()["message"], path
        assert (
            await http.get("/v1/models/clf/aliases", headers={"Authorization": f"Bearer {read}"})
        ).status_code == 200
        ok = await http.put(
            "/v1/models/clf/aliases/production", json={"version": 1}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert ok.status_code == 200
    assert [a.target for a in ModelStore(home).aliases()] == ["clf:1"]


async def test_a_model_card_is_the_text_the_cli_prints(home: Path) -> None:
    trained = train_digits(home)  # a real run: the card has its history and environment
    register("clf", home)
    derived = register("clf", home, lineage={"parent": "clf:1", "operation": "prune"})
    async with client(home) as http:
        for ref in (trained, derived):
            name, version = ref.split(":")
            answer = await http.get(f"/v1/models/{name}/versions/{version}/card")
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "text/markdown; charset=utf-8"
            printed = run_cli("--home", str(home), "models", "card", ref)
            assert printed.code == 0 and answer.text == printed.out == model_card(home, ref)
            assert front_matter(answer.text)["ref"] == ref
        for path, status, error in [
            ("/v1/models/digits-small/versions/9/card", 404, "NotFoundError"),
            ("/v1/models/nope/versions/1/card", 404, "NotFoundError"),
            ("/v1/models/clf/versions/0/card", 400, "InputError"),  # versions start at 1
        ]:
            missing = await http.get(path)
            assert (missing.status_code, missing.json()["error"]) == (status, error), path
            assert missing.json()["field"] == "ref" and "\n" not in missing.json()["message"]
        bad = await http.get("/v1/models/clf/versions/one/card")
        assert bad.status_code == 422 and "\n" not in bad.json()["message"], bad.text


async def test_a_model_card_needs_a_read_token_off_loopback(home: Path) -> None:
    register("clf", home)
    _, read = TokenStore(home).create("read", "viewer")
    async with client(home, host=PUBLIC) as http:
        assert (await http.get("/v1/models/clf/versions/1/card")).status_code == 401
        shown = await http.get("/v1/models/clf/versions/1/card", headers={"Authorization": f"Bearer {read}"})
        assert shown.status_code == 200 and shown.text == model_card(home, "clf:1")
