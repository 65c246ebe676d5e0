"""The first thing a CPU pool process does (brokers/cpu_pool.py): arrange to die with its
worker. Only the standard library: a pool process imports this, and nothing of Offload
that would build a broker.

Pool processes are spawned by their worker, so the kernel can signal them when it exits,
even on ``kill -9``. Without this, a pool process inside a step that never returns would
spin on, orphaned, after its worker was killed.
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1
"""linux/prctl.h: the signal the kernel sends this process when its parent exits."""


def die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
