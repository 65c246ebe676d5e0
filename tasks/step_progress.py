"""Progress out of a CPU step: the step, in a pool process, writes ``done total`` to a small
file; the job, on the event loop, reads it and reports it (its checkpoint). Pure."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

WRITE_EVERY_SECONDS = 0.05
RECORD_BYTES = 32
"""One fixed-size record written with pwrite at offset 0: a reader sees the old or the new."""


@dataclass
class ProgressFile:
    """Callable ``progress(done, total)``; picklable (a path and two numbers). ``path``
    must exist (the job creates it); once it is removed, progress is dropped."""

    path: Path | None = None
    _last_write: float = field(default=0.0, repr=False)

    def __call__(self, done: int, total: int) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if done < total and now - self._last_write < WRITE_EVERY_SECONDS:
            return
        self._last_write = now
        record = f"{done} {total}".encode().ljust(RECORD_BYTES)
        try:
            # Never O_CREAT: the job makes the file and removes it when the step ends; a
            # step cut short but not yet killed must not bring it back, to be left behind.
            descriptor = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            os.pwrite(descriptor, record, 0)
        finally:
            os.close(descriptor)


def read_progress(path: Path) -> tuple[int, int] | None:
    """The last ``(done, total)`` written to ``path``, or None if nothing readable yet."""
    try:
        fields = path.read_bytes()[:RECORD_BYTES].split()
        done, total = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    return done, total


NO_PROGRESS = ProgressFile()
