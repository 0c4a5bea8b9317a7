"""The federation routes: start (tokens once, stored hashed), and the client protocol's refusals:
a wrong token is a 401, an update of another name, shape or dtype a 422 naming the parameter, an
update for a round that is not open a 409; nothing is stored by any of them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from safetensors.torch import save

from modelyard.federated.federation import Federation
from modelyard.server import ServerConfig, create_server_app
from modelyard.server.jobs.store import JobStore
from tests.support.compression import digits_spec

pytestmark = pytest.mark.anyio

STATE = {"w": torch.zeros(3, 2), "b": torch.zeros(3), "steps": torch.zeros((), dtype=torch.int64)}


def deployed_spec(**section: Any) -> dict[str, Any]:
    spec = digits_spec(epochs=1, hidden=(8,))
    spec["federated"] = {"clients": 3, "rounds": 2, "mode": "deployed", "quorum": 2, **section}
    return spec


@pytest.fixture
async def api(home: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(port=8080, home=home), start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield client


async def started(api: httpx.AsyncClient, home: Path) -> tuple[dict[str, Any], Federation]:
    """A federation whose round 1 is open for clients 0 and 1 (the aggregator's writes, done here)."""
    r = await api.post("/v1/federations", json={"spec": deployed_spec()})
    assert r.status_code == 201, r.text
    fed = Federation.open(home, r.json()["id"])
    layout = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in STATE.items()]
    fed.write_task({"spec": {}, "meta": {}, "layout": layout})
    fed.open_round(1, save(STATE), [0, 1], timeout_s=60, rounds=2)
    return r.json(), fed


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post_update(
    api: httpx.AsyncClient, token: str, state: dict[str, torch.Tensor], rnd: int = 1, samples: str = "10"
) -> httpx.Response:
    headers = {**bearer(token), "X-Samples": samples, "Content-Type": "application/octet-stream"}
    return await api.post(f"/v1/federated/updates/{rnd}", content=save(state), headers=headers)


async def test_start_queues_the_aggregator_job_and_shows_each_token_once(api: httpx.AsyncClient, home: Path) -> None:
    answer, fed = await started(api, home)
    tokens = [c["token"] for c in answer["tokens"]]
    assert len(set(tokens)) == 3 and all(t.startswith(f"myf_{fed.id}_") for t in tokens)
    stored = (fed.folder / "federation.json").read_text()
    assert not any(t in stored for t in tokens)  # hashed, as the server's own tokens
    job = JobStore(home).get(answer["job_id"])
    assert job.max_attempts == 1 and job.spec["federation"] == {"id": fed.id}
    shown = (await api.get(f"/v1/federations/{fed.id}")).json()
    assert "tokens" not in shown and shown["state"]["status"] == "open" and shown["state"]["round"] == 1
    status = (await api.get("/v1/federated/status", headers=bearer(tokens[2]))).json()
    assert status["client"] == {"name": "client-2", "index": 2} and status["selected"] is False
    weights = await api.get("/v1/federated/weights/1", headers=bearer(tokens[0]))
    assert weights.status_code == 200 and weights.content == fed.global_weights(1)


async def test_a_good_update_is_stored_once_and_a_second_is_a_409(api: httpx.AsyncClient, home: Path) -> None:
    answer, fed = await started(api, home)
    token = answer["tokens"][0]["token"]
    state = {**STATE, "w": torch.ones(3, 2)}
    ok = await post_update(api, token, state)
    assert ok.status_code == 200, ok.text
    assert fed.received(1) == [0]
    again = await post_update(api, token, state)
    assert again.status_code == 409 and "already sent" in again.json()["message"]
    status = (await api.get("/v1/federated/status", headers=bearer(token))).json()
    assert status["submitted"] is True


@pytest.mark.parametrize(
    ("state", "named", "expected"),
    [
        ({**STATE, "w": torch.zeros(2, 3)}, "w", "expected shape [3, 2] float32, received [2, 3] float32"),
        ({**STATE, "b": torch.zeros(3, dtype=torch.float64)}, "b", "expected shape [3] float32, received [3] float64"),
        ({"w": STATE["w"], "steps": STATE["steps"]}, "b", "is missing"),
        ({**STATE, "extra": torch.zeros(1)}, "extra", "not a weight of the model"),
        ({**STATE, "w": torch.full((3, 2), float("nan"))}, "w", "expected finite values"),
    ],
)
async def test_an_update_of_another_shape_is_a_422_naming_the_parameter_and_nothing_is_stored(
    api: httpx.AsyncClient, home: Path, state: dict[str, torch.Tensor], named: str, expected: str
) -> None:
    answer, fed = await started(api, home)
    r = await post_update(api, answer["tokens"][0]["token"], state)
    assert r.status_code == 422 and r.json()["field"] == f"update.{named}", r.text
    assert expected in r.json()["message"] and "\n" not in r.json()["message"]
    assert fed.received(1) == [] and not any(p.name.startswith(".update") for p in (fed.folder / "round-1").iterdir())


@pytest.mark.parametrize("samples", ["0", "-3", "many", ""])
async def test_a_bad_sample_count_or_body_is_a_422(api: httpx.AsyncClient, home: Path, samples: str) -> None:
    answer, fed = await started(api, home)
    r = await post_update(api, answer["tokens"][0]["token"], STATE, samples=samples)
    assert r.status_code == 422 and r.json()["field"] == "X-Samples"
    headers = {**bearer(answer["tokens"][0]["token"]), "X-Samples": "5"}
    pickled = await api.post("/v1/federated/updates/1", content=b"\x80\x04not safetensors", headers=headers)
    assert pickled.status_code == 422 and "safetensors" in pickled.json()["message"]
    assert fed.received(1) == []


async def test_a_wrong_token_is_a_401(api: httpx.AsyncClient, home: Path) -> None:
    answer, fed = await started(api, home)
    real = answer["tokens"][0]["token"]
    for token in (
        real[:-2] + "xx",
        f"myf_{fed.id}_" + "a" * 43,
        "myd_" + "a" * 43,
        "",
        "myf_fed-000000000000_" + "a" * 43,
    ):
        for r in (
            await api.get("/v1/federated/status", headers=bearer(token)),
            await post_update(api, token, STATE),
        ):
            assert r.status_code == 401 and "federation token" in r.json()["message"], (token, r.text)
    assert fed.received(1) == []


async def test_an_update_for_a_closed_or_other_round_or_an_undrawn_client_is_a_409(
    api: httpx.AsyncClient, home: Path
) -> None:
    answer, fed = await started(api, home)
    tokens = [c["token"] for c in answer["tokens"]]
    undrawn = await post_update(api, tokens[2], STATE)
    assert undrawn.status_code == 409 and "not drawn" in undrawn.json()["message"]
    future = await post_update(api, tokens[0], STATE, rnd=2)
    assert future.status_code == 409 and "Round 2" in future.json()["message"]
    fed.close_round(1)  # the aggregator closed it (its timeout passed)
    closed = await post_update(api, tokens[1], STATE)
    assert closed.status_code == 409 and closed.json()["error"] == "RoundClosedError"
    assert not (fed.folder / "round-1").exists() and fed.received(1) == []
    assert [p.name for p in (fed.folder / "round-1.closed").iterdir()] == []


async def test_accept_after_the_folder_closed_is_a_409_not_a_stored_update(api: httpx.AsyncClient, home: Path) -> None:
    """The race the rename settles: the state still said open, the folder is already closed."""
    answer, fed = await started(api, home)
    state = json.loads((fed.folder / "state.json").read_text())
    fed.close_round(1)
    fed.set_state(**state)  # the aggregator has renamed the folder but not yet written the new state
    r = await post_update(api, answer["tokens"][0]["token"], STATE)
    assert r.status_code == 409 and "closed while the update arrived" in r.json()["message"]
    assert [p.name for p in (fed.folder / "round-1.closed").iterdir()] == []


@pytest.mark.parametrize(
    ("section", "field", "expected"),
    [
        ({"mode": "simulation", "quorum": None}, "federated.mode", "expected deployed"),
        ({"quorum": 4}, "federated", "quorum: expected at most clients_per_round (3)"),
        ({"quorum": 0}, "federated.quorum", "expected a number >= 1, received 0"),
        (
            {"secure_aggregation": {"threshold": 3}, "quorum": 2},
            "federated",
            "quorum: expected at least secure_aggregation.threshold (3) with secure aggregation",
        ),
        ({"round_timeout_s": -1}, "federated.round_timeout_s", "expected a number > 0, received -1"),
    ],
)
async def test_a_bad_federation_spec_is_a_422_and_nothing_is_created(
    api: httpx.AsyncClient, home: Path, section: dict[str, Any], field: str, expected: str
) -> None:
    spec = deployed_spec(**section)
    spec["federated"] = {k: v for k, v in spec["federated"].items() if v is not None}
    r = await api.post("/v1/federations", json={"spec": spec})
    assert r.status_code == 422, r.text
    assert r.json()["field"].startswith(field) and expected in r.json()["message"], r.json()
    assert (await api.get("/v1/federations")).json()["federations"] == []
    assert JobStore(home).list() == []


async def test_secure_phase_messages_are_checked_and_refused_outside_their_phase(
    api: httpx.AsyncClient, home: Path
) -> None:
    """A malformed message is a 422 naming the field, one outside its phase a 409; nothing is stored."""
    import base64

    import numpy as np
    from safetensors.numpy import save as save_numpy

    from modelyard.federated import secure_relay

    answer, fed = await started(api, home)
    tokens = [c["token"] for c in answer["tokens"]]
    secure_relay.open_phase(fed, 1, "keys", [0, 1], 60, 2, {})
    key = base64.b64encode(b"k" * 32).decode()
    bad = await api.post("/v1/federated/secure/1/keys", json={"channel": key, "mask": "xx"}, headers=bearer(tokens[0]))
    assert bad.status_code == 422 and "`mask`: expected base64 of 32 bytes" in bad.json()["message"]
    wrong = await api.post("/v1/federated/secure/1/shares", json={"envelopes": {}}, headers=bearer(tokens[0]))
    assert wrong.status_code == 409 and "Phase shares of round 1" in wrong.json()["message"]
    undrawn = await api.post(
        "/v1/federated/secure/1/keys", json={"channel": key, "mask": key}, headers=bearer(tokens[2])
    )
    assert undrawn.status_code == 409 and "takes no part in phase keys" in undrawn.json()["message"]
    assert secure_relay.posted(fed, 1, "keys") == []
    ok = await api.post("/v1/federated/secure/1/keys", json={"channel": key, "mask": key}, headers=bearer(tokens[0]))
    assert ok.status_code == 200 and secure_relay.posted(fed, 1, "keys") == [0]
    again = await api.post("/v1/federated/secure/1/keys", json={"channel": key, "mask": key}, headers=bearer(tokens[0]))
    assert again.status_code == 409 and "already posted its keys" in again.json()["message"]
    status = (await api.get("/v1/federated/status", headers=bearer(tokens[0]))).json()
    assert status["phase"] == "keys" and status["submitted"] is True
    assert secure_relay.close_phase(fed, 1, "keys", [0, 1], 0) == {
        0: json.dumps({"channel": key, "mask": key}).encode()
    }
    # The masked phase: one uint64 vector of the float weights and the weight (3*2 + 3 + 1 = 10).
    secure_relay.open_phase(fed, 1, "masked", [0, 1], 60, 2, {"0": {"1": key}})
    mine = await api.get("/v1/federated/secure/1/masked", headers=bearer(tokens[0]))
    assert mine.json() == {"envelopes": {"1": key}}
    headers = {**bearer(tokens[1]), "X-Samples": "5", "Content-Type": "application/octet-stream"}
    short = save_numpy({"masked": np.zeros(9, dtype=np.uint64)})
    r = await api.post("/v1/federated/secure/1/masked", content=short, headers=headers)
    assert r.status_code == 422 and "shape [10] uint64, received [9] uint64" in r.json()["message"]
    floats = save_numpy({"masked": np.zeros(10, dtype=np.float64)})
    r = await api.post("/v1/federated/secure/1/masked", content=floats, headers=headers)
    assert r.status_code == 422 and r.json()["field"] == "masked"
    assert secure_relay.posted(fed, 1, "masked") == []
    r = await api.post(
        "/v1/federated/secure/1/masked", content=save_numpy({"masked": np.zeros(10, np.uint64)}), headers=headers
    )
    assert r.status_code == 200 and secure_relay.posted(fed, 1, "masked") == [1]
    unknown = await api.get("/v1/federated/secure/1/nonsense", headers=bearer(tokens[0]))
    assert unknown.status_code == 404 and "expected one of keys, shares, masked, answers" in unknown.json()["message"]
