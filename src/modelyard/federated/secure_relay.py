"""Secure aggregation in the deployed mode: ``secure_round.py``'s messages through the federation's folder.

A secure round has four phases, each opened by the aggregator (``state.json`` names the round, the
phase and its clients) and closed at its timeout or once every client of it has posted, by
renaming its folder (``secure-<N>-<phase>/`` to ``.closed``, as ``round-<N>`` is, so a message that
arrives during the close is counted or refused, never stored and ignored):

- ``keys``: each drawn client posts its two public keys (``{"channel": b64, "mask": b64}``).
- ``shares``: the clients of U1 read the relayed keys and post their envelopes (``{"envelopes":
  {holder: b64}}``).
- ``masked``: the clients of U2 read the envelopes they hold, train, and post their masked vector
  (safetensors ``{"masked": uint64[n]}``, ``X-Samples``, ``X-Loss``); a client that does not is dropped.
- ``answers``: the survivors read the survivor list and post their shares (``{"answers": {u: [kind,
  x, b64]}}``); the aggregator unmasks the sum.

What a phase's clients read is ``secure-<N>-<phase>.json`` (the aggregator's, written before the
phase opens). ``GET``/``POST /v1/federated/secure/{round}/{phase}`` are the routes.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from typing import Any

import numpy as np

from modelyard._files import atomic_write_text, read_json
from modelyard.errors import InvalidRequestError, NotFoundError, RoundClosedError
from modelyard.federated.federation import Federation, FederationClient

__all__ = ["PHASES", "open_phase", "close_phase", "posted", "post", "published", "check_message", "b64", "unb64"]

PHASES = ("keys", "shares", "masked", "answers")
POLL_S = 0.05


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, field: str, size: int | None = None) -> bytes:
    try:
        data = base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except ValueError:
        data = None
    if data is None or (size is not None and len(data) != size) or len(data) > 4096:
        want = f"{size} bytes" if size is not None else "at most 4096 bytes"
        raise InvalidRequestError(
            f"Invalid `{field}`: expected base64 of {want}, received {str(text)[:40]!r}", field=field
        ) from None
    return data


def _folder(fed: Federation, rnd: int, phase: str) -> Any:
    return fed.folder / f"secure-{rnd}-{phase}"


# -- the aggregator's side -------------------------------------------------------------------


def open_phase(
    fed: Federation, rnd: int, phase: str, selected: list[int], timeout_s: float, rounds: int, inputs: Any
) -> None:
    """Publish what the phase's clients read (``inputs``), its message folder, then the state naming it open."""
    atomic_write_text(fed.folder / f"secure-{rnd}-{phase}.json", json.dumps(inputs))
    _folder(fed, rnd, phase).mkdir()
    fed.set_state(
        status="open", round=rnd, rounds=rounds, phase=phase, selected=selected, deadline=time.time() + timeout_s
    )


def close_phase(fed: Federation, rnd: int, phase: str, selected: list[int], timeout_s: float) -> dict[int, bytes]:
    """Wait until every client of the phase posted or ``timeout_s`` passed, close it: the messages by client."""
    deadline = time.monotonic() + timeout_s
    while len(posted(fed, rnd, phase)) < len(selected) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    closed = fed.folder / f"secure-{rnd}-{phase}.closed"
    os.rename(_folder(fed, rnd, phase), closed)
    return {int(n[7:]): (closed / n).read_bytes() for n in sorted(os.listdir(closed)) if n.startswith("client-")}


# -- the routes' side ------------------------------------------------------------------------


def posted(fed: Federation, rnd: int, phase: str) -> list[int]:
    folder = _folder(fed, rnd, phase)
    names = os.listdir(folder) if folder.is_dir() else []
    return sorted(int(n[7:]) for n in names if n.startswith("client-"))


def _check_open(fed: Federation, client: FederationClient, rnd: int, phase: str) -> None:
    state = fed.state()
    why = None
    if state.get("status") != "open" or int(state.get("round", 0)) != rnd or state.get("phase") != phase:
        now = f"round {state.get('round')} is {state.get('status')}, phase {state.get('phase')}"
        why = f"Phase {phase} of round {rnd} of federation {fed.id} is not open ({now})"
    elif client.index not in state.get("selected", []):
        why = f"Client {client.name} takes no part in phase {phase} of round {rnd} of federation {fed.id}"
    elif client.index in posted(fed, rnd, phase):
        why = f"Client {client.name} already posted its {phase} of round {rnd}"
    if why is not None:
        raise RoundClosedError(why + "; GET /v1/federated/status names the open round and phase", field="round")


def published(fed: Federation, client: FederationClient, rnd: int, phase: str) -> Any:
    """What ``client`` reads in the open phase: the relayed keys, the envelopes it holds, the survivors."""
    _check_phase(phase)
    path = fed.folder / f"secure-{rnd}-{phase}.json"
    state = fed.state()
    if not path.is_file() or state.get("phase") != phase or int(state.get("round", 0)) != rnd:
        raise NotFoundError(f"Phase {phase} of round {rnd} of federation {fed.id} is not open", field="phase")
    inputs = read_json(path)
    if phase == "masked":  # each client reads only the envelopes sealed for it
        return {"envelopes": inputs.get(str(client.index), {})}
    return inputs


def post(fed: Federation, client: FederationClient, rnd: int, phase: str, data: bytes) -> None:
    """Store ``client``'s checked message of the phase; 409 unless that phase is open for it."""
    _check_open(fed, client, rnd, phase)
    folder = _folder(fed, rnd, phase)
    try:  # the folder is renamed when the phase closes: both calls then fail, and nothing is stored
        fd, tmp = tempfile.mkstemp(prefix=".msg-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / f"client-{client.index}")
    except FileNotFoundError:
        raise RoundClosedError(
            f"Phase {phase} of round {rnd} of federation {fed.id} closed while the message arrived; it was not counted",
            field="round",
        ) from None


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise NotFoundError(
            f"No secure aggregation phase {phase!r}: expected one of {', '.join(PHASES)}", field="phase"
        )


def check_message(phase: str, body: bytes, *, weights: int, samples: str | None, loss: str | None) -> bytes:
    """A client's message body checked for its phase (422 naming the field); the bytes to store."""
    _check_phase(phase)
    if phase == "masked":
        return _check_masked(body, weights, samples, loss)
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError(f"Invalid {phase} body: expected a JSON object", field="body") from None
    if not isinstance(message, dict):
        raise InvalidRequestError(f"Invalid {phase} body: expected a JSON object", field="body")
    if phase == "keys":
        from modelyard.federated.secure import KeyPair

        for name in ("channel", "mask"):
            try:  # a low-order point would make every honest client's key agreement with it fail
                KeyPair().exchange(unb64(message.get(name), name, 32))
            except ValueError:
                raise InvalidRequestError(
                    f"Invalid `{name}`: expected an X25519 public key, received one no key agreement accepts",
                    field=name,
                ) from None
        return json.dumps({"channel": message["channel"], "mask": message["mask"]}).encode()
    key = "envelopes" if phase == "shares" else "answers"
    items = message.get(key)
    if not isinstance(items, dict) or not all(isinstance(k, str) and k.isdigit() for k in items):
        raise InvalidRequestError(
            f"Invalid `{key}`: expected an object by client index, received {str(items)[:40]!r}", field=key
        )
    for k, v in items.items():
        if phase == "shares":
            unb64(v, f"envelopes.{k}")
        elif not (isinstance(v, list) and len(v) == 3 and v[0] in ("b", "s") and isinstance(v[1], int) and v[1] >= 1):
            raise InvalidRequestError(
                f'Invalid `answers.{k}`: expected ["b" or "s", x >= 1, base64 share], received {str(v)[:40]!r}',
                field=f"answers.{k}",
            )
        else:
            unb64(v[2], f"answers.{k}", 32)
    return json.dumps({key: items}).encode()


def _check_masked(body: bytes, weights: int, samples: str | None, loss: str | None) -> bytes:
    from safetensors import SafetensorError
    from safetensors.numpy import load, save

    try:
        count = int(samples) if samples is not None else 0
        local_loss = float(loss) if loss is not None else float("nan")
    except ValueError:
        count, local_loss = 0, float("nan")
    if count < 1:
        raise InvalidRequestError(
            f"Invalid header `X-Samples`: expected the client's sample count, an integer >= 1, received {samples!r}",
            field="X-Samples",
        )
    try:
        arrays = load(body)
    except (SafetensorError, ValueError, OSError):
        arrays = {}
    got = arrays.get("masked")
    if got is None or got.dtype != np.uint64 or got.shape != (weights + 1,) or len(arrays) != 1:
        shape = None if got is None else f"{list(got.shape)} {got.dtype}"
        raise InvalidRequestError(
            f"Invalid masked update: expected safetensors with one array 'masked' of shape [{weights + 1}] uint64, "
            f"received {shape}",
            field="masked",
        )
    return save({"masked": got}, metadata={"samples": str(count), "loss": repr(local_loss)})
