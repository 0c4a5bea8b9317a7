"""Keep freed tensor memory inside the process while training on a CPU: a process-wide choice.

PyTorch's CPU tensors come from ``malloc``. glibc serves large blocks (above a threshold
that starts at 128 KiB) with a fresh ``mmap`` and hands them back with ``munmap`` when
they are freed, and it trims the top of the heap back to the OS as well. A training
step frees and reallocates the same activation-sized blocks every step, so a step can
page-fault its activations in again (what that cost the seed CNN: docs/performance.md).
This is the problem jemalloc/tcmalloc (``LD_PRELOAD``) solve in
PyTorch's CPU performance guides; glibc can be told the same with two ``mallopt`` calls at
run time, which is what ``keep_freed_memory`` does, once per process.

The price is that memory a fit has freed stays with the process (it is reused by the next
step and the next fit, not returned to the OS). Because it changes the whole process, a
library call never makes it: the entry points that train do (``modelyard train`` and
``compress``, the control plane's job worker, the benchmarks), and ``fit`` only reports what is
in effect (``allocator_state``). ``MODELYARD_ALLOCATOR=default`` leaves glibc alone, and so
does ``MODELYARD_FAST_PATHS=0``; with another allocator preloaded nothing is changed either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import threading
from typing import Literal

from modelyard import fast_paths

__all__ = ["keep_freed_memory", "allocator_state", "AllocatorState"]

log = logging.getLogger(__name__)

AllocatorState = Literal["glibc-kept", "default"]

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap instead of mmap (glibc 2.26+ accepts up to
# its heap limit and refuses more; the smaller fallback is the documented 64-bit maximum).
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
_TRIM_THRESHOLD = (1 << 31) - 1  # the largest int mallopt takes: trim only past 2 GiB of free top

_lock = threading.Lock()
_state: AllocatorState | None = None


def _preloaded_allocator() -> bool:
    preload = os.environ.get("LD_PRELOAD", "")
    return any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc"))


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> AllocatorState:
    """Tell glibc to keep large freed blocks for reuse; returns what is in effect.

    Idempotent and cheap after the first call. "default" means nothing was changed: not
    glibc, another allocator preloaded, ``MODELYARD_ALLOCATOR=default``, or glibc refused.
    """
    global _state
    with _lock:
        if _state is not None:
            return _state
        _state = _apply()
        return _state


def allocator_state() -> AllocatorState:
    """What is in effect in this process: "glibc-kept" once an entry point chose it, else "default"."""
    return _state or "default"


def _apply() -> AllocatorState:
    if not fast_paths.enabled():
        return "default"
    if os.environ.get("MODELYARD_ALLOCATOR", "").strip().lower() == "default" or _preloaded_allocator():
        return "default"
    libc = _glibc()
    if libc is None:
        return "default"
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in _MMAP_THRESHOLDS):
        log.debug("glibc refused M_MMAP_THRESHOLD; leaving the allocator as it is")
        return "default"
    mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    return "glibc-kept"
