"""A deployed federation's folder: what the control plane's routes and its aggregator share.

``<home>/federations/<id>/``, written by two processes, each file by one of them:

- ``federation.json`` (the route that created it): the spec, the clients with their join
  tokens' SHA-256 (a token is shown once, as the server's own tokens are), the job's id.
- ``task.json``, ``state.json``, ``global-<N>.safetensors`` (the aggregator, a job worker): what
  a client needs to prepare its data (the fitted preprocessing, class names, the weights' names,
  shapes and dtypes), which round is open for which clients until when, the round's global weights.
- ``joined-<k>`` (the route): client ``k`` has prepared its data (``POST /v1/federated/ready``); round 1 opens once ``quorum``
  clients have.
- ``round-<N>/client-<k>.safetensors`` (the route): client ``k``'s validated update of round N,
  re-serialised from the checked arrays with its sample count in the metadata.

A round is closed by renaming ``round-<N>`` to ``round-<N>.closed``: an update renamed into the
folder before that counts, and one after it finds no folder and is refused (409), so the
aggregator and the routes need no lock between them. Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard._files import atomic_write_bytes, atomic_write_text, read_json
from modelyard.errors import InvalidRequestError, NotFoundError, RoundClosedError, UnauthorizedError
from modelyard.store import paths

__all__ = ["Federation", "FederationClient", "TOKEN_PREFIX", "check_update", "new_federation"]

TOKEN_PREFIX = "myf_"
_ID = re.compile(r"^fed-[0-9a-f]{12}$")
_TOKEN = re.compile(r"^myf_(fed-[0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _root(home: str | Path | None) -> Path:
    return paths.home(home) / "federations"


@dataclass(frozen=True)
class FederationClient:
    """One client of a federation, as its join token identifies it."""

    federation: str
    name: str
    index: int


def new_federation(
    home: str | Path | None, spec: dict[str, Any], clients: int
) -> tuple[Federation, list[dict[str, Any]]]:
    """Create a federation's folder for ``spec``; its clients ``client-0`` ... with their tokens (shown only now)."""
    names = [f"client-{k}" for k in range(clients)]
    fid = f"fed-{secrets.token_hex(6)}"
    tokens = [f"{TOKEN_PREFIX}{fid}_{secrets.token_urlsafe(32)}" for _ in names]
    folder = _root(home) / fid
    folder.mkdir(parents=True)
    record = {
        "id": fid,
        "name": spec["name"],
        "created_at": time.time(),
        "spec": spec,
        "clients": [{"name": n, "index": k, "sha256": _hash(t)} for k, (n, t) in enumerate(zip(names, tokens))],
        "job_id": None,
    }
    atomic_write_text(folder / "federation.json", json.dumps(record), private=True)
    fed = Federation(folder)
    return fed, [{"name": n, "index": k, "token": t} for k, (n, t) in enumerate(zip(names, tokens))]


class Federation:
    """The folder of one federation (see the module's docstring for who writes what)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def open(cls, home: str | Path | None, fid: str) -> Federation:
        folder = _root(home) / fid
        if not _ID.match(fid) or not (folder / "federation.json").is_file():
            raise NotFoundError(f"No federation {fid!r}: list them with GET /v1/federations", field="federation")
        return cls(folder)

    @classmethod
    def all(cls, home: str | Path | None) -> list[Federation]:
        root = _root(home)
        found = [cls(p) for p in root.iterdir() if _ID.match(p.name)] if root.is_dir() else []
        return sorted(found, key=lambda f: f.record.get("created_at", 0), reverse=True)

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def record(self) -> dict[str, Any]:
        return read_json(self.folder / "federation.json")

    def set_job(self, job_id: str) -> None:
        record = self.record
        record["job_id"] = job_id
        atomic_write_text(self.folder / "federation.json", json.dumps(record), private=True)

    # -- who is calling --------------------------------------------------------------------

    @classmethod
    def client_for(cls, home: str | Path | None, token: str) -> tuple[Federation, FederationClient]:
        """The federation and client a join token belongs to; 401 for any other token."""
        match = _TOKEN.match(token or "")
        folder = _root(home) / (match.group(1) if match else "")
        if match is None or not (folder / "federation.json").is_file():
            raise UnauthorizedError(
                "Invalid federation token: expected `Authorization: Bearer myf_...`, a client token that "
                "POST /v1/federations (`modelyard federated start`) printed"
            )
        fed = cls(folder)
        digest = _hash(token)
        for client in fed.record["clients"]:
            if hmac.compare_digest(client["sha256"], digest):
                return fed, FederationClient(fed.id, client["name"], int(client["index"]))
        raise UnauthorizedError(f"Invalid federation token: no client of federation {fed.id} has it")

    # -- the aggregator's side -------------------------------------------------------------

    def write_task(self, task: dict[str, Any]) -> None:
        atomic_write_text(self.folder / "task.json", json.dumps(task))

    def task(self) -> dict[str, Any] | None:
        path = self.folder / "task.json"
        return read_json(path) if path.is_file() else None

    def state(self) -> dict[str, Any]:
        path = self.folder / "state.json"
        return read_json(path) if path.is_file() else {"status": "waiting", "round": 0}

    def set_state(self, **state: Any) -> None:
        atomic_write_text(self.folder / "state.json", json.dumps(state))

    def open_round(self, rnd: int, weights: bytes, selected: list[int], timeout_s: float, rounds: int) -> None:
        """Publish round ``rnd``: its global weights, its update folder, then the state naming it open."""
        self.publish_weights(rnd, weights)
        (self.folder / f"round-{rnd}").mkdir()
        self.set_state(status="open", round=rnd, rounds=rounds, selected=selected, deadline=time.time() + timeout_s)

    def publish_weights(self, rnd: int, weights: bytes) -> None:
        atomic_write_bytes(self.folder / f"global-{rnd}.safetensors", weights)

    def received(self, rnd: int) -> list[int]:
        """The clients whose update of the open round ``rnd`` has arrived."""
        folder = self.folder / f"round-{rnd}"
        names = os.listdir(folder) if folder.is_dir() else []
        return sorted(int(n[7:-12]) for n in names if n.startswith("client-") and n.endswith(".safetensors"))

    def close_round(self, rnd: int) -> dict[int, Path]:
        """Close round ``rnd`` (updates arriving later are refused): the update file of each client that answered."""
        closed = self.folder / f"round-{rnd}.closed"
        os.rename(self.folder / f"round-{rnd}", closed)
        names = [n for n in os.listdir(closed) if n.startswith("client-") and n.endswith(".safetensors")]
        return {int(n[7:-12]): closed / n for n in sorted(names)}

    def joined(self) -> list[int]:
        """The clients that said they are ready (``mark_joined``)."""
        return sorted(int(n[7:]) for n in os.listdir(self.folder) if n.startswith("joined-"))

    def global_weights(self, rnd: int) -> bytes:
        path = self.folder / f"global-{rnd}.safetensors"
        if not path.is_file():
            raise NotFoundError(f"No global weights for round {rnd} of federation {self.id}", field="round")
        return path.read_bytes()

    # -- the route's side ------------------------------------------------------------------

    def mark_joined(self, client: FederationClient) -> None:
        (self.folder / f"joined-{client.index}").touch()

    def check_open(self, client: FederationClient, rnd: int) -> None:
        """409 unless round ``rnd`` is open for ``client`` and has no update of it yet."""
        state = self.state()
        why = None
        if state.get("status") != "open" or int(state.get("round", 0)) != rnd:
            now = f"round {state.get('round')} is {state.get('status')}" if state.get("round") else "no round is open"
            why = f"Round {rnd} of federation {self.id} is not open ({now})"
        elif client.index not in state.get("selected", []):
            why = f"Client {client.name} is not drawn for round {rnd} of federation {self.id}"
        elif client.index in self.received(rnd):
            why = f"Client {client.name} already sent its update of round {rnd}"
        if why is not None:
            raise RoundClosedError(why + "; GET /v1/federated/status names the open round", field="round")

    def accept(self, client: FederationClient, rnd: int, data: bytes) -> None:
        """Store client ``client``'s checked update of round ``rnd``; 409 unless that round is open for it."""
        self.check_open(client, rnd)
        folder = self.folder / f"round-{rnd}"
        try:  # the folder is renamed when the round closes: both calls then fail, and nothing is stored
            fd, tmp = tempfile.mkstemp(prefix=".update-", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / f"client-{client.index}.safetensors")
        except FileNotFoundError:
            raise RoundClosedError(
                f"Round {rnd} of federation {self.id} closed while the update arrived; it was not counted",
                field="round",
            ) from None


def check_update(data: bytes, layout: list[list[Any]], *, samples: str | None, loss: str | None) -> bytes:
    """A client's update body, checked against the global weights' layout (``[[name, shape, dtype], ...]``):
    the same names, shapes and dtypes, finite values, a sample count >= 1. Returns the bytes to store
    (the checked arrays re-serialised, ``samples`` and ``loss`` in the metadata); 422 naming the field otherwise."""
    import numpy as np
    from safetensors import SafetensorError
    from safetensors.numpy import load, save

    try:
        count = int(samples) if samples is not None else None
    except ValueError:
        count = None
    if count is None or count < 1:
        raise InvalidRequestError(
            f"Invalid header `X-Samples`: expected the client's sample count, an integer >= 1, received {samples!r}",
            field="X-Samples",
        )
    try:
        local_loss = float(loss) if loss is not None else float("nan")
    except ValueError:
        raise InvalidRequestError(
            f"Invalid header `X-Loss`: expected a number, received {loss!r}", field="X-Loss"
        ) from None
    try:
        arrays = load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise InvalidRequestError(
            f"Invalid update body: expected safetensors bytes of the model's weights ({type(exc).__name__})",
            field="body",
        ) from None
    want = {name: (list(shape), dtype) for name, shape, dtype in layout}
    missing = [n for n in want if n not in arrays]
    extra = [n for n in arrays if n not in want]
    if missing or extra:
        name = (missing or extra)[0]
        what = "missing" if missing else "not a weight of the model"
        raise InvalidRequestError(
            f"Invalid update: parameter {name!r} is {what}; expected the parameters {sorted(want)}, received "
            f"{sorted(arrays)}",
            field=f"update.{name}",
        )
    for name, (shape, dtype) in want.items():
        got = arrays[name]
        if list(got.shape) != shape or str(got.dtype) != dtype:
            raise InvalidRequestError(
                f"Invalid update: parameter {name!r}: expected shape {shape} {dtype}, received "
                f"{list(got.shape)} {got.dtype}",
                field=f"update.{name}",
            )
        if got.dtype.kind == "f" and not np.isfinite(got).all():
            raise InvalidRequestError(
                f"Invalid update: parameter {name!r}: expected finite values, received NaN or infinity",
                field=f"update.{name}",
            )
    return save(arrays, metadata={"samples": str(count), "loss": repr(local_loss)})
