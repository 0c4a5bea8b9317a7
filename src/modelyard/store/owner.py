"""Which process trains a run: ``artifacts/runs/<id>/owner.json`` (pid, host, start time).

Written when a run starts or resumes, so ``train --resume`` can tell a run whose process is
gone on this machine (SIGKILL, the OOM killer) without waiting for its heartbeat to age, and
``runs cancel`` can stop the process that trains it. The process's start time (Linux
``/proc/<pid>/stat``) guards against a recycled pid; a run on another host is judged by its
heartbeat alone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from modelyard._files import atomic_write_bytes

__all__ = ["Owner", "record_owner", "read_owner"]

OWNER_FILE = "owner.json"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return int(stat[stat.rindex(")") + 2 :].split()[19])


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    start_ticks: int | None

    @property
    def local(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool | None:
        """True/False for a process on this machine; None when it runs elsewhere (ask the heartbeat)."""
        if not self.local:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process with that pid: the start time decides
        return self.start_ticks is None or _start_ticks(self.pid) == self.start_ticks

    def stop(self) -> bool:
        """SIGTERM the process if it is alive here (it marks its run and exits); True if signalled."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True


def record_owner(run_dir: Path) -> Owner:
    """Say that this process trains the run of ``run_dir``."""
    owner = Owner(pid=os.getpid(), host=socket.gethostname(), start_ticks=_start_ticks(os.getpid()))
    atomic_write_bytes(run_dir / OWNER_FILE, json.dumps(asdict(owner)).encode())
    return owner


def read_owner(run_dir: Path) -> Owner | None:
    """The process that last started the run, or None if none was recorded (or the file is unreadable)."""
    try:
        doc = json.loads((run_dir / OWNER_FILE).read_text())
        return Owner(pid=int(doc["pid"]), host=str(doc["host"]), start_ticks=doc.get("start_ticks"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
