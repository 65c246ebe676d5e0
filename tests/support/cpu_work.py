"""CPU steps for tests: pure functions that a worker's CPU pool runs.

This module imports nothing of Offload, like any module a CPU step should live in.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path


def spin_forever(pid_file: str) -> None:
    """Write this process's pid, then burn CPU and never return (nor reach a checkpoint)."""
    Path(pid_file).write_text(str(os.getpid()))
    count = 0
    while True:
        count += 1


def whoami() -> dict[str, object]:
    """What the pool process running this is: its pid, its name, and whether it imported
    the broker or the service (a `taskiq worker`'s pool imports its main script, the
    taskiq CLI, as every spawned process imports its parent's main module)."""
    loaded = sorted({name.split(".")[0] for name in sys.modules})
    return {
        "pid": os.getpid(),
        "name": multiprocessing.current_process().name,
        "offload_modules": [name for name in loaded if name in ("brokers", "service")],
    }


def double(number: int) -> int:
    return 2 * number
