"""A monitored deployment's alert queues a retraining job on a real `python -m modelyard server`.

train (digits, through the API) → deploy with monitoring (window 50) and a retrain policy →
shifted traffic (uniform noise, not digits) → the replica's background check alerts → its
webhook reaches the server's internal route → one job of the version's stored spec, with the
policy's override and the alert recorded on it → it trains and registers the next version.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelyard.spec import load_spec
from modelyard.store import ModelStore
from tests.integration.test_server_deploy import FINAL, Server, train_through_api, wait_for


def test_shifted_traffic_alerts_and_queues_one_retraining_job_that_registers_a_version(
    home: Path, tmp_path: Path
) -> None:
    with Server(home, tmp_path / "server.log") as server:
        ref = train_through_api(server)
        policy = {"on": ["output_shift", "feature_drift"], "cooldown_s": 3600, "overrides": ["train.epochs=1"]}
        body = {
            "name": "web",
            "model": ref,
            "backend": "torch",
            "monitor_sample": 1.0,
            "monitor_window": 50,
            "retrain": policy,
        }
        created = server.http.post("/v1/deployments", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["options"]["retrain"] == policy
        wait_for("the replica", lambda: server.running("web", 1))

        noise = np.random.default_rng(0).uniform(0, 16, size=(50, 64)).round(2)  # far from the digits
        answer = server.http.post("/v1/deployments/web/predict", json={"instances": noise.tolist()})
        assert answer.status_code == 200, answer.text

        def retraining() -> dict | None:
            found = [j for j in server.http.get("/v1/jobs").json()["jobs"] if j["trigger"] is not None]
            return found[0] if found else None

        queued = wait_for("the retraining job", retraining, 60)
        replica_log = home / "server" / "deployments" / "web" / "replica-0.log"
        assert "monitor alert" in replica_log.read_text()  # logged before the webhook is called
        done = wait_for(
            "it to finish",
            lambda: (j := server.http.get(f"/v1/jobs/{queued['id']}").json())["status"] in FINAL and j,
            120,
        )
        assert done["status"] == "succeeded", done
        name, _, version = ref.partition(":")
        assert done["model_ref"] == f"{name}:{int(version) + 1}"  # the same model name, the next version
        trigger = done["trigger"]
        assert (trigger["deployment"], trigger["model"], trigger["version"], trigger["window"]) == (
            "web",
            name,
            int(version),
            50,
        )
        assert trigger["check"] in policy["on"] and trigger["p_value"] < 0.05
        assert done["spec"] == load_spec(ModelStore(home).get(ref).load_spec(), ["train.epochs=1"]).to_dict()
        assert [row["epoch"] for row in done["history"]] == [1]

        # One job between them (a second alert within cooldown_s queues none: tests/unit/server/retrain;
        # here the replica's next check waits 49 x what the first took, too long on a loaded machine).
        jobs = server.http.get("/v1/jobs").json()["jobs"]
        assert [j["id"] for j in jobs if j["trigger"] is not None] == [queued["id"]] and len(jobs) == 2
        assert server.http.delete("/v1/deployments/web").status_code == 200
