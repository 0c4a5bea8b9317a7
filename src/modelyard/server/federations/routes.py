"""``/v1/federations`` (start, list, show: the server's tokens) and ``/v1/federated/`` (the clients').

``POST /v1/federations`` takes a job body whose spec has ``federated.mode: deployed``: it creates
the federation's folder with one join token per client (shown once, stored hashed), and queues its
aggregator as a job (one attempt) that a worker runs through ``workflow.train``; the rounds are
that job's run, its history the live per-round curves. The client routes authenticate with a join
token instead of a server token (the auth middleware leaves ``/v1/federated/`` to them):

- ``GET /v1/federated/status``: the open round, whether this client is drawn and has answered.
- ``GET /v1/federated/task``: the spec and the aggregator's fitted preprocessing (``task.json``).
- ``POST /v1/federated/ready``: the client has prepared its data; round 1 opens once ``quorum`` have.
- ``GET /v1/federated/weights/{round}``: the round's global weights (safetensors).
- ``POST /v1/federated/updates/{round}``: the client's weights (safetensors), ``X-Samples`` its
  sample count; 409 unless the round is open for it, 422 naming a parameter of another name,
  shape or dtype, and nothing stored either way.
- ``GET``/``POST /v1/federated/secure/{round}/{phase}`` (``secure_aggregation``): what the client
  reads in the phase (the relayed keys, the envelopes it holds, the survivors) and its message
  (its public keys, its envelopes, its masked update, its shares); 409 unless the phase is open
  for it, 422 naming the field of a malformed message (``federated/secure_relay.py``).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from modelyard.errors import NotFoundError, SpecError
from modelyard.federated import secure_relay
from modelyard.federated.federation import Federation, FederationClient, check_update, new_federation
from modelyard.server.body import read_body
from modelyard.server.jobs.submit import MAX_BODY_BYTES, check_spec, parse_body
from modelyard.spec import FEDERATION_SECTION
from modelyard.status import Status

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router", "UPDATE_SLACK_BYTES"]

UPDATE_SLACK_BYTES = 1 << 20  # an update's header and metadata, beyond its weights' bytes
_DTYPE_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


def router(state: ServerState) -> APIRouter:
    access = state.config.data_access()
    api = APIRouter(tags=["federations"])

    def job_of(fed: Federation) -> Any:
        job_id = fed.record.get("job_id")
        try:
            return state.jobs.get(job_id) if job_id else None
        except NotFoundError:
            return None

    def status_of(fed: Federation) -> dict[str, Any]:
        """The aggregator's state, settled by its job: a job that ended early ends the federation."""
        current = fed.state()
        job = job_of(fed)
        if job is not None and job.status in (Status.FAILED, Status.CANCELLED) and current["status"] != "failed":
            current = {**current, "status": "failed", "message": job.error or f"the federation's job was {job.status}"}
        if job is not None and job.status == Status.SUCCEEDED:
            current = {**current, "status": "finished", "model_ref": job.model_ref}
        return current

    def describe(fed: Federation) -> dict[str, Any]:
        record = fed.record
        job = job_of(fed)
        return {
            "id": fed.id,
            "name": record["name"],
            "created_at": record["created_at"],
            "clients": [{"name": c["name"], "index": c["index"]} for c in record["clients"]],
            "job_id": record.get("job_id"),
            "run_id": job.run_id if job is not None else None,
            "state": status_of(fed),
        }

    @api.post("/v1/federations", status_code=201, summary="Start a deployed federation: its clients' tokens")
    async def start(request: Request) -> dict[str, Any]:
        parsed = parse_body(
            await read_body(request, MAX_BODY_BYTES, what="Federation body"), request.headers.get("content-type")
        )
        spec = await run_in_threadpool(lambda: check_spec(parsed, access, home=state.home))
        section = spec.get("federated") or {}
        if section.get("mode") != "deployed":
            raise SpecError(
                "Invalid value for `federated.mode`: POST /v1/federations runs a deployed federation, expected "
                f"deployed, received {section.get('mode') if section else 'no federated section'!r} "
                "(a simulation is an ordinary job: POST /v1/jobs)",
                field="federated.mode",
            )
        fed, clients = await run_in_threadpool(new_federation, state.home, spec, int(section["clients"]))
        principal = getattr(request.state, "principal", None)
        try:
            job = await run_in_threadpool(
                state.jobs.submit,
                {**spec, FEDERATION_SECTION: {"id": fed.id}},
                max_attempts=1,  # its rounds keep no checkpoint: a lost aggregator fails the federation
                submitted_by=principal.name if principal is not None else None,
            )
            await run_in_threadpool(fed.set_job, job.id)
        except BaseException:
            shutil.rmtree(fed.folder, ignore_errors=True)
            raise
        return {**describe(fed), "tokens": clients}

    @api.get("/v1/federations", summary="The federations, newest first")
    def list_federations() -> dict[str, Any]:
        return {"federations": [describe(f) for f in Federation.all(state.home)]}

    @api.get("/v1/federations/{fid}", summary="One federation: clients, round, job")
    def show(fid: str) -> dict[str, Any]:
        return describe(Federation.open(state.home, fid))

    # -- the clients' routes: a join token, not a server token --------------------------------

    def client(request: Request) -> tuple[Federation, FederationClient]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return Federation.client_for(state.home, token.strip() if scheme.lower() == "bearer" else "")

    @api.get("/v1/federated/status", summary="A client's view: the open round, drawn or not")
    def client_status(request: Request) -> dict[str, Any]:
        fed, me = client(request)
        current = status_of(fed)
        rnd = int(current.get("round", 0))
        is_open = current["status"] == "open"
        return {
            "federation": fed.id,
            "client": {"name": me.name, "index": me.index},
            **{k: v for k, v in current.items() if k != "selected"},
            "selected": is_open and me.index in current.get("selected", []),
            "submitted": is_open
            and me.index
            in (secure_relay.posted(fed, rnd, phase) if (phase := current.get("phase")) else fed.received(rnd)),
        }

    @api.get("/v1/federated/task", summary="The spec and fitted preprocessing a client prepares its data with")
    def client_task(request: Request) -> dict[str, Any]:
        fed, _ = client(request)
        task = fed.task()
        if task is None:
            raise NotFoundError(f"Federation {fed.id} has not started yet: its aggregator job is queued", field="task")
        return task

    @api.post("/v1/federated/ready", summary="The client has prepared its data and takes part from now on")
    def client_ready(request: Request) -> dict[str, Any]:
        fed, me = client(request)
        fed.mark_joined(me)
        return {"federation": fed.id, "client": me.name, "joined": True}

    @api.get("/v1/federated/weights/{rnd}", summary="A round's global weights (safetensors)")
    def client_weights(rnd: int, request: Request) -> Response:
        fed, _ = client(request)
        return Response(fed.global_weights(rnd), media_type="application/octet-stream")

    @api.post("/v1/federated/updates/{rnd}", summary="A client's weights after its local training")
    async def client_update(rnd: int, request: Request) -> dict[str, Any]:
        fed, me = await run_in_threadpool(client, request)
        await run_in_threadpool(fed.check_open, me, rnd)  # 409 before the body is read
        task = await run_in_threadpool(fed.task)
        layout = task["layout"] if task else []
        limit = UPDATE_SLACK_BYTES + sum(_numel(shape) * _DTYPE_BYTES.get(dtype, 8) for _, shape, dtype in layout)
        body = await read_body(request, limit, what="Update body")
        data = await run_in_threadpool(
            lambda: check_update(
                body, layout, samples=request.headers.get("x-samples"), loss=request.headers.get("x-loss")
            )
        )
        await run_in_threadpool(fed.accept, me, rnd, data)
        return {"federation": fed.id, "round": rnd, "client": me.name, "accepted": True}

    @api.get("/v1/federated/secure/{rnd}/{phase}", summary="What a client reads in a secure round's phase")
    def client_secure_inputs(rnd: int, phase: str, request: Request) -> Any:
        fed, me = client(request)
        return secure_relay.published(fed, me, rnd, phase)

    @api.post("/v1/federated/secure/{rnd}/{phase}", summary="A client's message of a secure round's phase")
    async def client_secure_message(rnd: int, phase: str, request: Request) -> dict[str, Any]:
        fed, me = await run_in_threadpool(client, request)
        task = await run_in_threadpool(fed.task)
        layout = task["layout"] if task else []
        weights = sum(_numel(shape) for _, shape, dtype in layout if "float" in dtype)
        body = await read_body(request, UPDATE_SLACK_BYTES + 8 * (weights + 1), what=f"Secure {phase} body")
        data = await run_in_threadpool(
            lambda: secure_relay.check_message(
                phase,
                body,
                weights=weights,
                samples=request.headers.get("x-samples"),
                loss=request.headers.get("x-loss"),
            )
        )
        await run_in_threadpool(secure_relay.post, fed, me, rnd, phase, data)
        return {"federation": fed.id, "round": rnd, "phase": phase, "client": me.name, "accepted": True}

    return api


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
