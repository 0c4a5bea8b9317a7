"""N worker processes x M jobs, with workers SIGKILLed at random (many of them mid-claim): every job
runs to the end (zero lost) and no job is ever held by two workers at once (zero duplicates).

Runs on the suite's back end: SQLite serializes claims with its write lock; on PostgreSQL
(``--db postgresql``) the workers claim concurrently with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelyard.server.jobs.leases import Leases
from modelyard.server.jobs.store import JobStore
from modelyard.status import Status
from tests.support.jobs import resolved, tiny_spec
from tests.support.server_process import wait_for

ROOT = Path(__file__).resolve().parents[2]
WORKERS, JOBS, KILLS, LEASE_S = 4, 300, 30, 1.0
MIN_KILLS = 10  # the queue must last at least this many kills on a slow machine


def _worker(home: Path, logs: Path, n: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.claim_worker", str(home), str(logs / f"{n}.log"), str(LEASE_S)],
        cwd=ROOT,
    )


def _log_text(log: Path) -> str:
    return log.read_text() if log.exists() else ""


def _last_line(log: Path) -> str:
    lines = _log_text(log).splitlines()
    return lines[-1] if lines else ""


def _kill(victim: subprocess.Popen[bytes], log: Path, *, mid_claim: bool) -> None:
    """SIGKILL ``victim`` now, or (``mid_claim``) the moment its log says it began a claim."""
    deadline = time.monotonic() + 2
    while mid_claim and _last_line(log) != "claiming" and time.monotonic() < deadline:
        time.sleep(0.001)
    victim.send_signal(signal.SIGKILL)
    victim.wait()


def test_sigkilled_workers_lose_no_job_and_never_share_one(home: Path, tmp_path: Path) -> None:
    jobs = JobStore(home)
    spec = resolved(tiny_spec())
    ids = {jobs.submit(spec, max_attempts=KILLS + 5).id for _ in range(JOBS)}
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(14)
    workers = [_worker(home, logs, n) for n in range(WORKERS)]
    started, killed = WORKERS, []
    leases = Leases(home, LEASE_S)
    began = time.monotonic()
    try:
        # Every 0.05-0.3 s while jobs are queued, a worker that has started claiming is killed; every
        # other kill is aimed at a claim in flight, the rest land anywhere (often while holding a job).
        while len(killed) < KILLS and jobs.list(status="queued", limit=1):
            time.sleep(rng.uniform(0.05, 0.3))
            working = [w for w in workers if "claimed" in _log_text(Path(w.args[-2]))]
            if not working:
                continue
            victim = rng.choice(working)
            _kill(victim, Path(victim.args[-2]), mid_claim=len(killed) % 2 == 0)
            workers.remove(victim)
            killed.append(victim.args[-2])
            workers.append(_worker(home, logs, started))
            started += 1
            leases.reap()  # the server's reaper: expired leases of the killed go back to the queue

        def all_done() -> bool:
            leases.reap()
            return all(j.status == Status.SUCCEEDED for j in jobs.list(limit=1000))

        wait_for(all_done, timeout=180, what="every job to succeed", every=0.3)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    elapsed = time.monotonic() - began

    claims: collections.Counter[tuple[str, int]] = collections.Counter()
    finished: collections.Counter[str] = collections.Counter()
    mid_claim = 0
    for log in logs.iterdir():
        lines = log.read_text().splitlines()
        for line in lines:
            word, *rest = line.split()
            if word == "claimed":
                claims[(rest[0], int(rest[1]))] += 1
            elif word == "finished":
                finished[rest[0]] += 1
        mid_claim += str(log) in killed and bool(lines) and lines[-1] == "claiming"
    final = {j.id: j for j in jobs.list(limit=1000)}
    assert set(final) == ids and all(j.status == Status.SUCCEEDED for j in final.values())  # zero lost
    assert [c for c, n in claims.items() if n > 1] == []  # zero duplicates: each attempt claimed by one worker
    assert [j for j, n in finished.items() if n > 1] == []  # and finished by one
    assert all(final[j].attempts >= a for j, a in claims)  # every logged claim counted as an attempt
    assert len(finished) >= JOBS - KILLS  # only a kill between a finish's commit and its log line hides one
    assert len(killed) >= MIN_KILLS and mid_claim >= 1, f"{len(killed)} kills, {mid_claim} mid-claim: nothing tested"
    retried = sum(1 for j in final.values() if j.attempts > 1)
    print(
        f"\n{WORKERS} workers x {JOBS} jobs, {len(killed)} SIGKILLs ({mid_claim} mid-claim), {retried} jobs retried, "
        f"{sum(claims.values())} claims logged, {elapsed:.1f} s: 0 duplicates, 0 lost"
    )
