"""A bare job worker for the claim stress test: claim, hold briefly, finish, forever (until SIGKILLed).

``python -m tests.support.claim_worker HOME LOG LEASE_S``. Every step goes to LOG, line-buffered,
so a SIGKILL loses no line already written: ``claiming`` before each claim (the last line of a
worker killed mid-claim), ``claimed JOB ATTEMPT`` after it commits, ``finished JOB`` after the
finish commits, ``lost JOB`` when the reaper had taken the job back first.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import time

from modelyard.errors import LeaseLostError
from modelyard.server.jobs.leases import Leases
from modelyard.status import Status


def main(home: str, log: str, lease_s: float) -> None:
    leases = Leases(home, lease_s)
    worker = f"{os.getpid()}@{socket.gethostname()}"
    with open(log, "a", buffering=1) as out:
        while True:
            out.write("claiming\n")
            job = leases.claim(worker)
            if job is None:
                out.write("idle\n")
                time.sleep(0.02)
                continue
            out.write(f"claimed {job.id} {job.attempts}\n")
            time.sleep(random.uniform(0.02, 0.08))  # the "training": a window for a kill while holding the lease
            try:
                leases.finish(job.id, worker, Status.SUCCEEDED)
            except LeaseLostError:
                out.write(f"lost {job.id}\n")
                continue
            out.write(f"finished {job.id}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
