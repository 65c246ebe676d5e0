"""Following the pool processes that CPU steps run in: which pid, and whether it is gone."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def read_pid(path: Path) -> int | None:
    """The pid a step wrote to ``path`` (tests.support.cpu_work.spin_forever), if yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # gone meanwhile (reading /proc can then fail with ESRCH)
        return False
    return state != "Z"


async def wait_for_pid(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (pid := read_pid(path)) is None:
        assert time.monotonic() < deadline, f"no pid in {path} after {timeout:g} s"
        await asyncio.sleep(0.02)
    return pid


async def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while process_exists(pid):
        assert time.monotonic() < deadline, f"process {pid} still there after {timeout:g} s"
        await asyncio.sleep(0.02)
