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


HEAVY = ("brokers", "service.app", "taskiq_fastapi", "redis")
"""What a pool process must not import: the broker (whose import builds a backend), the app,
their clients. (Not fastapi: the `taskiq` CLI, a main module, imports it.)"""


def whoami() -> dict[str, object]:
    """What the pool process running this is: its pid, its name, and which of :data:`HEAVY`
    it imported. A spawned process imports its parent's main module: for `taskiq worker`,
    the taskiq CLI; for `offload worker`, service/cli.py."""
    return {
        "pid": os.getpid(),
        "name": multiprocessing.current_process().name,
        "offload_modules": [name for name in HEAVY if name in sys.modules],
    }


def double(number: int) -> int:
    return 2 * number
