"""Auth of the control plane: tokens (hashed, roles), open loopback, Host/Origin checks,
console sessions with CSRF, bootstrap token, config validation."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from modelyard.errors import InputError, NotFoundError, SpecError  # noqa: E402
from modelyard.server import ServerConfig, create_server_app  # noqa: E402
from modelyard.server.auth.middleware import Auth  # noqa: E402
from modelyard.server.auth.tokens import TokenStore, hash_token  # noqa: E402
from modelyard.server.run import bootstrap_token  # noqa: E402
from tests.support.jobs import tiny_spec  # noqa: E402

pytestmark = pytest.mark.anyio
PUBLIC = "192.0.2.2"  # TEST-NET-1: never a real peer; the app only compares names


@asynccontextmanager
async def client(home: Path, host: str = "127.0.0.1", **config: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(host=host, port=8080, home=home, **config), start_workers=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8080") as http:
        yield http


def flip_last(text: str) -> str:
    return text[:-1] + ("1" if text[-1] == "0" else "0")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_are_stored_hashed_with_their_role(home: Path) -> None:
    tokens = TokenStore(home)
    admin, secret = tokens.create("admin", "ops")
    read, read_secret = tokens.create("read")
    text = tokens.path.read_text()
    assert secret.startswith("myd_") and len(secret) > 40
    assert secret not in text and read_secret not in text and hash_token(secret) in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert tokens.verify(secret) == admin and tokens.verify(read_secret).role == "read"
    assert tokens.verify(secret + "x") is None
    assert [t.name for t in tokens.list()] == ["ops", read.name]
    with pytest.raises(InputError, match="expected one of read, admin"):
        tokens.create("root")
    with pytest.raises(InputError, match="expected a new name"):
        tokens.create("read", "ops")
    assert tokens.revoke("ops") == admin and tokens.verify(secret) is None
    assert tokens.revoke(read.id) == read
    with pytest.raises(NotFoundError, match="Unknown token"):
        tokens.revoke("ops")


async def test_loopback_without_tokens_is_open_to_this_machine(home: Path) -> None:
    async with client(home) as http:
        assert (await http.post("/v1/jobs", json=tiny_spec())).status_code == 201
        session = (await http.get("/v1/session")).json()
        assert session["auth"] is False and session["role"] == "admin" and session["csrf"]


async def test_a_token_on_loopback_turns_auth_on(home: Path) -> None:
    _, read = TokenStore(home).create("read")
    async with client(home) as http:
        assert (await http.get("/v1/jobs")).status_code == 401
        assert (await http.get("/v1/jobs", headers=bearer(read))).status_code == 200


async def test_non_loopback_needs_tokens_read_for_gets_admin_for_writes(home: Path) -> None:
    tokens = TokenStore(home)
    _, admin = tokens.create("admin", "ops")
    _, read = tokens.create("read", "viewer")
    async with client(home, host=PUBLIC) as http:
        assert (await http.get("/healthz")).status_code == 200
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/openapi.json")):
            r = await http.request(method, path, json=tiny_spec() if method == "POST" else None)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert r.json()["error"] == "UnauthorizedError" and "modelyard server token create" in r.json()["message"]
        bad = await http.get("/v1/jobs", headers=bearer("myd_not-a-token"))
        assert bad.status_code == 401 and bad.json()["message"].startswith("Invalid token")
        assert (await http.get("/v1/jobs", headers=bearer(read))).status_code == 200
        denied = await http.post("/v1/jobs", json=tiny_spec(), headers=bearer(read))
        assert denied.status_code == 403 and "needs an admin token" in denied.json()["message"]
        created = await http.post("/v1/jobs", json=tiny_spec(), headers=bearer(admin))
        assert created.status_code == 201 and created.json()["submitted_by"] == "ops"
        cancel = await http.post(f"/v1/jobs/{created.json()['id']}/cancel", headers=bearer(read))
        assert cancel.status_code == 403
        tokens.revoke("viewer")  # a running server honours it at once
        assert (await http.get("/v1/jobs", headers=bearer(read))).status_code == 401


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("localhost", True),
        ("[::1]:8080", True),
        ("attacker.example:8080", False),
        ("127.0.0.1:9999", False),
        ("127.0.0.1:80x", False),
        ("", False),
    ],
)
async def test_host_header_must_name_this_server(home: Path, host: str, ok: bool) -> None:
    async with client(home) as http:
        r = await http.get("/v1/jobs", headers={"host": host})
        assert (r.status_code == 200) is ok, r.text
        if not ok:
            assert r.status_code == 400 and r.json()["error"] == "InvalidHostError"


async def test_host_names_of_a_public_or_wildcard_bind(home: Path) -> None:
    auth = Auth(ServerConfig(host="0.0.0.0", port=8080, home=home, allowed_hosts=["models.example.com"]), home)
    import socket

    assert auth.host_ok("127.0.0.1:8080") and auth.host_ok(f"{socket.gethostname()}:8080")
    assert auth.host_ok("models.example.com:8080") and not auth.host_ok("other.example.com:8080")
    public = Auth(ServerConfig(host=PUBLIC, port=8080, home=home), home)
    assert public.host_ok(f"{PUBLIC}:8080") and not public.host_ok("10.0.0.1:8080")


async def test_cross_origin_writes_are_refused_even_with_a_token(home: Path) -> None:
    _, admin = TokenStore(home).create("admin")
    async with client(home, allowed_origins=["https://console.example.com"]) as http:
        for origin, status in (
            ("http://evil.example", 403),
            ("null", 403),
            ("http://127.0.0.1:9999", 403),
            ("http://127.0.0.1:8080", 201),
            ("http://localhost:8080", 201),
            ("https://console.example.com", 201),
        ):
            r = await http.post("/v1/jobs", json=tiny_spec(), headers={**bearer(admin), "origin": origin})
            assert r.status_code == status, (origin, r.text)
        # Reads are not refused for their Origin (the browser keeps the answer from a foreign page anyway).
        assert (
            await http.get("/v1/jobs", headers={**bearer(admin), "origin": "http://evil.example"})
        ).status_code == 200


async def test_console_session_cookie_needs_the_csrf_token_for_writes(home: Path) -> None:
    tokens = TokenStore(home)
    _, admin = tokens.create("admin", "ops")
    _, read = tokens.create("read", "viewer")
    async with client(home, host=PUBLIC) as http:
        assert (await http.get("/v1/session")).json() == {"auth": True, "role": None, "name": None, "csrf": None}
        assert (await http.post("/v1/session", json={"token": "myd_wrong"})).status_code == 401
        assert (await http.post("/v1/session", json={})).status_code == 422

        signed = await http.post("/v1/session", json={"token": admin})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and admin not in cookie
        csrf = signed.json()["csrf"]
        assert signed.json()["role"] == "admin" and (await http.get("/v1/session")).json()["csrf"] == csrf

        assert (await http.get("/v1/jobs")).status_code == 200  # reads: the cookie is enough
        assert (await http.post("/v1/jobs", json=tiny_spec())).status_code == 403  # no CSRF header
        wrong = await http.post("/v1/jobs", json=tiny_spec(), headers={"x-csrf-token": flip_last(csrf)})
        assert wrong.status_code == 403 and "X-CSRF-Token" in wrong.json()["message"]
        assert (await http.post("/v1/jobs", json=tiny_spec(), headers={"x-csrf-token": csrf})).status_code == 201

        value = http.cookies["modelyard_session"]
        http.cookies.clear()  # from here on the cookie goes by hand, exactly as written
        tampered = flip_last(value)
        assert (await http.get("/v1/jobs", headers={"cookie": f"modelyard_session={tampered}"})).status_code == 401
        assert (await http.get("/v1/jobs", headers={"cookie": f"modelyard_session={value}"})).status_code == 200
        tokens.revoke("ops")
        revoked = await http.get("/v1/jobs", headers={"cookie": f"modelyard_session={value}"})
        assert revoked.status_code == 401  # the session ends with its token

        viewer = await http.post("/v1/session", json={"token": read})
        headers = {"x-csrf-token": viewer.json()["csrf"]}
        assert (await http.post("/v1/jobs", json=tiny_spec(), headers=headers)).status_code == 403  # role
        assert (await http.delete("/v1/session")).json()["role"] is None
        assert (await http.get("/v1/jobs")).status_code == 401


def test_a_fresh_public_server_makes_one_admin_token_and_a_loopback_one_none(home: Path) -> None:
    assert bootstrap_token(ServerConfig(home=home)) is None
    assert not TokenStore(home).any()
    token = bootstrap_token(ServerConfig(host=PUBLIC, home=home))
    assert token is not None and TokenStore(home).verify(token).role == "admin"
    assert bootstrap_token(ServerConfig(host=PUBLIC, home=home)) is None  # shown once


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"lease_s": 5, "heartbeat_s": 5}, "server", "must be longer than heartbeat_s"),
        ({"workers": -1}, "server.workers", ">= 0"),
        ({"port": 70000}, "server.port", "<= 65535"),
        ({"host": "a b"}, "server.host", "expected an IP address or host name"),
        ({"allowed_origins": ["console.example.com"]}, "server.allowed_origins", "expected origins such as"),
    ],
)
def test_config_refuses_bad_values_naming_the_field(values: dict, field: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        ServerConfig.make(**values)
    assert info.value.field == field
