"""A deployed federation's client: ``modelyard federated join URL --data PATH --token T``.

The process keeps its data: it reads ``PATH`` with the federation's data source (the spec's
``data.source`` with its ``path`` replaced; csv, parquet, jsonl or npz), applies the aggregator's
fitted preprocessing (so every client scales its features the same way), and for each round it is
drawn for fetches the global weights, trains them with ``rounds.client_fit`` (the simulation's
client step) and posts its weights (safetensors, never pickle) with its sample count. Only weights
and counts leave the machine. It returns when the federation finishes and raises when it fails.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from modelyard.errors import DataError, NotFoundError, RoundClosedError, SpecError, TrainingError

__all__ = ["join", "client_data"]


class _Patient:
    """``ServerClient.request`` that retries while the server is unreachable, for up to ``patience_s``."""

    def __init__(self, server: Any, patience_s: float, say: Callable[[str], None]) -> None:
        self.server, self.patience_s, self.say = server, patience_s, say

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        from modelyard.errors import ServerUnavailableError

        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                return self.server.request(method, path, **kwargs)
            except ServerUnavailableError as exc:
                if time.monotonic() > deadline:
                    raise ServerUnavailableError(f"{exc.message} (for {self.patience_s:g} s; giving up)") from None
                self.say(f"{exc.message}; asking again")
                time.sleep(min(5.0, self.patience_s / 10))


log = logging.getLogger(__name__)


def client_data(spec: Any, meta: dict[str, Any], path: str | Path) -> tuple[Any, Any]:
    """(Prepared with the aggregator's preprocessing, the client's training Split) from the file ``path``."""
    import numpy as np

    from modelyard.data.pipeline import Pipeline
    from modelyard.data.prepare import Prepared, transformed_split
    from modelyard.data.raw import SOURCES
    from modelyard.data.sources import load_source
    from modelyard.data.targets import canonical_targets
    from modelyard.spec import DataSpec

    source = spec.data.source
    fields = getattr(SOURCES.get(source.type).options, "path_fields", {})
    if "path" not in fields:
        raise SpecError(
            f"Invalid value for `--data`: the federation's data source {source.type!r} reads no file of the client's; "
            "a deployed federation's spec needs a file source (csv, parquet, jsonl or npz) whose path each client "
            "replaces with its own",
            field="data.source",
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"Invalid value for `--data`: expected a file, received {str(file)!r}", field="data.path")
    raw_spec = spec.to_dict()["data"]
    options = raw_spec["source"]["options"]
    options["path"] = str(file.resolve())
    for key in ("x_test", "y_test"):  # a client's file holds its training rows only
        options.pop(key, None)
    raw = load_source(DataSpec.model_validate(raw_spec).source, seed=spec.seed)
    pipeline = Pipeline.from_state(meta["pipeline"])
    y = canonical_targets(
        raw.y_train, spec.task, class_names=meta["class_names"], num_classes=meta["num_classes"], where=str(file)
    )
    split = transformed_split(pipeline, np.asarray(raw.x_train), y, where=str(file))
    prepared = Prepared(
        train=split,
        val=None,
        test=None,
        pipeline=pipeline,
        num_classes=meta["num_classes"],
        class_names=meta["class_names"],
        feature_names=meta["feature_names"],
        input_shape=pipeline.input_shape,
        kind=meta["kind"],
    )
    return prepared, split


def join(
    url: str,
    token: str,
    data: str | Path,
    *,
    poll_s: float = 0.5,
    patience_s: float = 120.0,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Take part in the federation ``token`` belongs to until it ends; its last status (``model_ref`` once registered).

    A server that does not answer (restarting, a network blip) is asked again for up to ``patience_s``
    seconds before the client gives up with one line; a refusal (401, 409, 422) is not retried.
    """
    import torch
    from safetensors.torch import load, save

    from modelyard.federated.rounds import client_fit
    from modelyard.nn import build_model
    from modelyard.server.client import ServerClient
    from modelyard.spec import load_spec

    with ServerClient(url, token, timeout_s=120.0) as server:
        api = _Patient(server, patience_s, say)
        status = api.request("GET", "/v1/federated/status").json()
        me = status["client"]
        say(f"joined federation {status['federation']} as {me['name']}")
        while status["status"] == "waiting":  # the aggregator's job is still queued: no task yet
            time.sleep(poll_s)
            status = api.request("GET", "/v1/federated/status").json()
        secure: Any = None  # the secure rounds' participant, under secure_aggregation
        if status["status"] not in ("failed", "finished"):
            task = api.request("GET", "/v1/federated/task").json()
            spec = load_spec(task["spec"])
            prepared, split = client_data(spec, task["meta"], data)  # before round 1: bad data fail now
            network = build_model(spec.model, loss=spec.train.loss.type)
            # A process's first torch optimizer imports torch._dynamo (2 s of CPU, over 10 s on a loaded
            # machine): build a throwaway one now, before round 1's timeout starts, not in the first fit.
            torch.optim.SGD(network.parameters(), lr=0.0)
            if spec.federated.secure_aggregation is not None:
                from modelyard.federated.deployed_secure import Participant

                secure = Participant(
                    api, spec, task, int(me["index"]), status["federation"], (network, prepared, split)
                )
            api.request("POST", "/v1/federated/ready")  # round 1's timeout starts once a quorum is ready
            say(f"{len(split)} samples from {data}")
        done, secure_done = 0, (0, "")
        while True:
            if status["status"] == "finished":
                say(
                    f"federation {status['federation']} finished"
                    + (f": {status['model_ref']}" if status.get("model_ref") else "")
                )
                return status
            if status["status"] == "failed":
                raise TrainingError(f"Federation {status['federation']} failed: {status.get('message')}")
            rnd = int(status.get("round", 0))
            phase = status.get("phase")
            if status["status"] == "open" and phase and status["selected"] and not status["submitted"]:
                if (rnd, phase) != secure_done:  # each phase of each round once
                    try:
                        secure.step(rnd, phase, say)
                    except (RoundClosedError, NotFoundError) as exc:  # too late: the phase closed (or moved on)
                        say(f"round {rnd}, {phase}: {exc.message}")
                    secure_done = (rnd, phase)
                else:
                    time.sleep(poll_s)
            elif status["status"] == "open" and status["selected"] and not status["submitted"] and rnd > done:
                start = load(api.request("GET", f"/v1/federated/weights/{rnd}").content)
                state, loss, _ = client_fit(spec, network, start, prepared, split, rnd=rnd, client=int(me["index"]))
                body = save({k: v.contiguous() for k, v in state.items()})
                headers = {
                    "X-Samples": str(len(split)),
                    "X-Loss": repr(loss),
                    "Content-Type": "application/octet-stream",
                }
                try:
                    api.request("POST", f"/v1/federated/updates/{rnd}", content=body, headers=headers)
                    say(f"round {rnd}: sent the update of {len(split)} samples (local loss {loss:.4f})")
                except RoundClosedError as exc:  # too late: the round closed at its timeout
                    say(f"round {rnd}: {exc.message}")
                done = rnd
            else:
                time.sleep(poll_s)
            status = api.request("GET", "/v1/federated/status").json()
