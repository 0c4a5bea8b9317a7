"""Stopping the server's child processes: SIGTERM first, SIGKILL for those still there after the grace period."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from modelyard.server.processes import stop_processes

_CHILD = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, {handler}); print('ready', flush=True); time.sleep(60)"
)


def _child(handler: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(handler=handler)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handler is installed
    return proc


def test_polite_children_get_sigterm_stubborn_ones_sigkill_after_one_shared_grace_period() -> None:
    polite = _child("lambda *_: sys.exit(0)")
    stubborn = [_child("signal.SIG_IGN"), _child("signal.SIG_IGN")]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = time.monotonic()
    stop_processes([polite, *stubborn, gone], grace_s=1.0, what="test child")
    took = time.monotonic() - started
    assert polite.returncode == 0 and gone.returncode == 0
    assert [p.returncode for p in stubborn] == [-signal.SIGKILL, -signal.SIGKILL]
    assert 1.0 <= took < 1.9  # one deadline for all: not 1 s per stubborn child
    for proc in (polite, *stubborn):
        assert proc.stdout is not None
        proc.stdout.close()
