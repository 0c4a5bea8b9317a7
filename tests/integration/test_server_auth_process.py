"""A real server on a non-loopback address: safe without configuration (it makes one admin
token and prints it once), unauthenticated writes refused, read vs admin tokens, Host/Origin
checks and the console's cookie + CSRF flow over HTTP, and the jobs CLI with tokens."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from modelyard.server.auth.tokens import TokenStore  # noqa: E402
from tests.support.cli import run_cli  # noqa: E402
from tests.support.server_process import spec, start_server  # noqa: E402
from tests.support.slow_clients import assert_slow_clients_are_closed  # noqa: E402


def own_address() -> tuple[str, str]:
    """(address to bind, address to connect to): this machine's own IPv4 if it has one,
    else every interface (0.0.0.0) reached through 127.0.0.1. Either is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # picks the outgoing interface; UDP sends nothing here
            address = s.getsockname()[0]
        except OSError:
            address = ""
    if address and not address.startswith("127."):
        try:
            with socket.socket() as probe:
                probe.bind((address, 0))
            return address, address
        except OSError:
            pass
    return "0.0.0.0", "127.0.0.1"


def test_the_control_plane_closes_slow_clients(home: Path) -> None:
    """Partial headers held open (slowloris) are cut off after --header-timeout-s, as on `modelyard serve`."""
    server = start_server(home, "--workers", "0", "--header-timeout-s", "1")
    try:
        assert_slow_clients_are_closed(int(server.url.rsplit(":", 1)[1]), seconds=1)
    finally:
        server.stop()


def test_a_public_server_refuses_unauthenticated_writes_and_checks_roles(home: Path) -> None:
    bind, connect = own_address()
    server = start_server(home, "--workers", "0", host=bind)
    server.url = server.url.replace(f"//{bind}:", f"//{connect}:")
    try:
        printed = re.search(r"created admin token \(shown once, store it now\): (myd_\S+)", server.output())
        assert printed, server.output()
        admin = printed.group(1)
        assert TokenStore(home).verify(admin).role == "admin"
        read = run_cli(
            "--home", str(home), "server", "token", "create", "--role", "read", "--name", "viewer"
        ).out.strip()
        url = server.url

        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/v1/jobs").status_code == 401
        refused = httpx.post(f"{url}/v1/jobs", json={"spec": spec()})
        assert refused.status_code == 401 and refused.json()["error"] == "UnauthorizedError"
        as_read = {"Authorization": f"Bearer {read}"}
        as_admin = {"Authorization": f"Bearer {admin}"}
        assert httpx.get(f"{url}/v1/jobs", headers=as_read).status_code == 200
        assert httpx.post(f"{url}/v1/jobs", json={"spec": spec()}, headers=as_read).status_code == 403
        created = httpx.post(f"{url}/v1/jobs", json={"spec": spec()}, headers=as_admin)
        assert created.status_code == 201 and created.json()["submitted_by"] == "bootstrap-admin"
        assert httpx.get(f"{url}/v1/jobs", headers={**as_read, "Host": "rebound.example"}).status_code == 400
        assert (
            httpx.post(
                f"{url}/v1/jobs", json={"spec": spec()}, headers={**as_admin, "Origin": "http://evil.example"}
            ).status_code
            == 403
        )

        with httpx.Client(base_url=url) as browser:  # the console: cookie + CSRF header
            session = browser.post("/v1/session", json={"token": admin}).json()
            assert session["role"] == "admin" and "modelyard_session" in browser.cookies
            assert browser.post("/v1/jobs", json={"spec": spec()}).status_code == 403
            ok = browser.post("/v1/jobs", json={"spec": spec()}, headers={"X-CSRF-Token": session["csrf"]})
            assert ok.status_code == 201

        denied = run_cli("jobs", "list", "--url", url)
        assert denied.code == 8 and "Missing token" in denied.err and "$MODELYARD_TOKEN" in denied.err
        assert run_cli("jobs", "list", "--url", url, "--token", read).code == 0
        cancel = run_cli("jobs", "cancel", created.json()["id"], "--url", url, "--token", read)
        assert cancel.code == 8 and "needs an admin token" in cancel.err
        assert run_cli("jobs", "cancel", created.json()["id"], "--url", url, "--token", admin).code == 0
    finally:
        server.stop()


@pytest.mark.parametrize("command", [("server", "token", "list"), ("server", "token", "list", "--json")])
def test_token_list_never_shows_tokens(home: Path, command: tuple[str, ...]) -> None:
    _, secret = TokenStore(home).create("admin", "ops")
    listed = run_cli("--home", str(home), *command)
    assert listed.code == 0 and "ops" in listed.out and secret not in listed.out
