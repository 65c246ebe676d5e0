"""Progress reports from running jobs: throttled, fenced, and the last one always kept.

A task reports as often as it likes (a 10,000-item batch may report every item); at most a
few writes a second reach the store. A report that is held back is written by the next one
due, or by :func:`flush_progress`, which the lifecycle middleware calls before recording the
outcome, so the final value is never lost. A report from an attempt that no longer holds the
job is refused by the store (see :class:`brokers.contract.JobStore`), and the reporter says
so by returning False.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from brokers.contract import JobStore
from schemas.jobs import Progress

PROGRESS_INTERVAL_SECONDS = 0.25
"""Least time between two progress writes of one job."""


class ProgressReporter:
    def __init__(
        self,
        store: JobStore,
        job_id: str,
        fence: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.fence = fence
        self.clock = clock
        self.writes = 0
        self._written_at = float("-inf")
        self._pending: Progress | None = None

    async def report(self, progress: Progress) -> bool:
        """Keep ``progress``; write it if enough time passed since the last write (or it is
        the final count). False when the attempt no longer holds the job."""
        self._pending = progress
        final = progress.total is not None and progress.done >= progress.total
        if not final and self.clock() - self._written_at < PROGRESS_INTERVAL_SECONDS:
            return True
        return await self.flush()

    async def flush(self) -> bool:
        """Write the report held back, if any."""
        pending = self._pending
        if pending is None:
            return True
        self._written_at = self.clock()
        self.writes += 1
        kept = await self.store.set_progress(self.job_id, self.fence, pending)
        if self._pending is pending:
            self._pending = None
        return kept


_reporters: dict[str, ProgressReporter] = {}
"""Job id -> the reporter of the attempt this process runs."""


def reporter_for(store: JobStore, job_id: str, fence: int) -> ProgressReporter:
    reporter = _reporters.get(job_id)
    if reporter is None or reporter.fence != fence:
        reporter = _reporters[job_id] = ProgressReporter(store, job_id, fence)
    return reporter


async def flush_progress(job_id: str) -> None:
    """Write a job's last held-back report and forget its reporter (its run has ended)."""
    reporter = _reporters.get(job_id)
    if reporter is not None:
        await reporter.flush()  # forgotten only once written: a failed write is retried
        _reporters.pop(job_id, None)
