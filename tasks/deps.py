"""What tasks may ask TaskiQ to inject."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar, cast

from taskiq import Context, TaskiqDepends

from brokers.factory import BACKEND_STATE_KEY, Backend
from brokers.lifecycle import (
    FENCE_LABEL,
    JOB_KIND_LABEL,
    AttemptSuperseded,
    JobCancelled,
    JobFailure,
    is_out_of_space,
)
from brokers.progress import reporter_for
from brokers.stopping import JobStopper
from brokers.uploads import Upload
from schemas.jobs import Progress, ResultFile

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

STORAGE_WAIT_SECONDS = 300.0
"""How long a job waits for disk space to store its result before it fails."""
UNOWNED_TENANT = "local"
"""Whose uploads a task kicked without a job (no record, so no tenant) may read."""


class InputMissing(JobFailure):
    """An uploaded file the job names is gone (deleted or expired since the submit)."""

    error_type = "input_missing"
    retryable = False


def current_backend(context: Annotated[Context, TaskiqDepends()]) -> Backend:
    """The backend whose broker delivered this task."""
    return cast(Backend, getattr(context.broker.state, BACKEND_STATE_KEY))


BackendDep = Annotated[Backend, TaskiqDepends(current_backend)]
ContextDep = Annotated[Context, TaskiqDepends()]


@dataclass(frozen=True)
class JobAttempt:
    """One run of a job: what it writes is refused once another attempt holds the job.

    Its :meth:`report` is the task's checkpoint: progress is recorded, and a superseded
    attempt learns there that it should stop.
    """

    job_id: str
    fence: int | None
    """The attempt's fencing token; None for a task kicked without a job, or a job whose
    delivery was lost before it started (then it may write nothing)."""
    is_job: bool
    backend: Backend

    async def ensure_held(self) -> None:
        if not self.is_job:
            return
        if self.fence is None or not await self.backend.store.holds(self.job_id, self.fence):
            await self._stop()

    async def _stop(self) -> NoReturn:
        """Raise why this attempt may not go on: a cancel was asked, or it was superseded."""
        record = await self.backend.store.get(self.job_id)
        if record is not None and record.cancel_requested:
            raise JobCancelled(f"job {self.job_id} was cancelled")
        raise AttemptSuperseded(
            f"this attempt of job {self.job_id} no longer holds it; another worker runs it"
        )

    async def report(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress (throttled to a few writes a second; the last report is always
        kept). Raises AttemptSuperseded once another attempt holds the job."""
        if not self.is_job:
            return
        if self.fence is None:
            await self.ensure_held()
            return
        reporter = reporter_for(self.backend.store, self.job_id, self.fence)
        if not await reporter.report(Progress(done=done, total=total, message=message)):
            await self._stop()

    async def run_cpu(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a CPU-bound step ``fn(*args)`` in this worker's process pool, off the event
        loop and where it can be stopped: past the job's time limit, or a grace period after
        a cancel (OFFLOAD_CANCEL_GRACE_SECONDS), its process is killed. ``fn``, its arguments
        and its result cross a process boundary: module-level, picklable, and best in a
        module that does not import the broker (a pure one, like tasks/qr_render.py)."""
        if kwargs:
            fn_with_kwargs: Callable[..., T] = functools.partial(fn, **kwargs)
            return await self._stopper().run_cpu(self._tracked_id, fn_with_kwargs, *args)
        return await self._stopper().run_cpu(self._tracked_id, fn, *args)

    @property
    def _tracked_id(self) -> str | None:
        return self.job_id if self.is_job else None

    def _stopper(self) -> JobStopper:
        stopper = self.backend.stopper
        if stopper is None:
            raise RuntimeError("this backend has no CPU pool (brokers.factory builds one)")
        return stopper

    async def input(self, file_id: str) -> Upload:
        """The uploaded file ``file_id`` of the job's tenant; pass its ``path`` to a
        ``run_cpu`` step. Raises InputMissing (not retryable) if it is gone."""
        tenant = UNOWNED_TENANT
        if self.is_job:
            record = await self.backend.store.get(self.job_id)
            if record is None:
                raise InputMissing(f"job {self.job_id} is gone, and with it whose files to read")
            tenant = record.tenant
        upload = await asyncio.to_thread(self.backend.uploads.get, tenant, file_id)
        if upload is None:
            raise InputMissing(f"uploaded file {file_id} is gone: deleted or expired")
        return upload

    async def save_file(
        self, file_id: str, name: str, content: bytes, content_type: str
    ) -> ResultFile:
        """Store a result file under a name of this attempt's own, after checking that the
        attempt still holds the job: a superseded attempt never overwrites its successor's."""
        return await self._store_file(
            file_id,
            lambda stored_id: self.backend.files.save(
                self.job_id, stored_id, name, content, content_type
            ),
        )

    @contextlib.asynccontextmanager
    async def scratch_file(self, suffix: str = "") -> AsyncIterator[Path]:
        """A fresh path on the result storage for a large result written in steps (by a
        ``run_cpu`` step too), then kept with :meth:`keep_file`; removed on exit if not kept,
        so a failed or cancelled attempt leaves nothing behind."""
        path = await asyncio.to_thread(self.backend.files.scratch, self.job_id, suffix)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def keep_file(
        self, file_id: str, name: str, written: Path, content_type: str
    ) -> ResultFile:
        """Make the scratch file ``written`` a result file, as :meth:`save_file` does."""
        return await self._store_file(
            file_id,
            lambda stored_id: self.backend.files.keep(
                self.job_id, stored_id, name, written, content_type
            ),
        )

    async def _store_file(self, file_id: str, store: Callable[[str], ResultFile]) -> ResultFile:
        await self.ensure_held()
        stored_id = file_id if self.fence is None else f"{file_id}-{self.fence}"
        # A full disk is not the job's fault: wait for space (the heartbeat keeps the job)
        # rather than burn its attempts; past the wait it fails as storage_full.
        deadline = time.monotonic() + STORAGE_WAIT_SECONDS
        pause = 0.1
        while True:
            try:
                stored = await asyncio.to_thread(store, stored_id)
            except OSError as error:
                if not is_out_of_space(error) or time.monotonic() + pause > deadline:
                    raise
                logger.warning("no space for job %s's result (%s); waiting", self.job_id, error)
            else:
                if self.fence is not None:
                    # Earlier attempts were superseded by this one: their copies are never
                    # a result, so a job run again keeps one file.
                    await asyncio.to_thread(
                        self.backend.files.discard_other_attempts, self.job_id, file_id, stored_id
                    )
                return stored
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
            await self.ensure_held()


def current_attempt(context: ContextDep, backend: BackendDep) -> JobAttempt:
    labels = context.message.labels
    fence = labels.get(FENCE_LABEL)
    return JobAttempt(
        job_id=context.message.task_id,
        fence=None if fence is None else int(fence),
        is_job=JOB_KIND_LABEL in labels,
        backend=backend,
    )


AttemptDep = Annotated[JobAttempt, TaskiqDepends(current_attempt)]
