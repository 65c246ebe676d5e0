"""CPU steps of jobs, run in a pool of processes that can be killed (pebble's ProcessPool).

A thread cannot be stopped; a process can. Cancelling a step's future kills the process
running it and the pool starts another in its place, so a job cancelled (or over its time
limit) inside a step that never returns frees its CPU and its worker slot.

The pool's processes are started with ``spawn``, never ``fork``: a forked child would
share the worker's Redis sockets and SQLite handles and inherit its heartbeat. Not
``forkserver`` either: its server outlives a worker killed with ``kill -9`` for as long as
any of its children runs (each holds the server's "alive" pipe), so it cannot take a
spinning step down with it; a spawned process is the worker's own child and dies with it
(service/cpu_process.py). They import only the module of the function they run
(``tasks/__init__`` registers no tasks in them), so they never build a broker, start a
server or renew a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar, cast

from pebble import ProcessExpired, ProcessPool
from pebble.pool.process import WORKERS_NAME

from brokers.lifecycle import JobFailure
from service.cpu_process import die_with_parent

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

POOL_PROCESS_NAME = WORKERS_NAME
"""What ``multiprocessing.current_process().name`` is in a pool process (tasks/__init__)."""
START_METHOD = "spawn"


class CpuStepDied(JobFailure):
    """The process running a CPU step died (killed from outside, out of memory, a crash)."""

    error_type = "cpu_step_died"
    retryable = True


def in_pool_process() -> bool:
    return multiprocessing.current_process().name == POOL_PROCESS_NAME


class CpuPool:
    """One pool per worker process, started on first use, with ``workers`` processes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPool | None = None
        self._closing = False
        self._unfinished: set[Future[Any]] = set()
        self._unfinished_lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._pool is not None

    def _running_pool(self) -> ProcessPool:
        if self._pool is None or not self._pool.active:
            if self._pool is not None:  # broken (e.g. its manager died): start another
                self._pool.stop()  # type: ignore[no-untyped-call]
            # `taskiq worker` imports task modules with the working directory on sys.path,
            # then takes it off; a pool process, started with the worker's sys.path, could
            # then not import a step's module from there.
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            context = multiprocessing.get_context(START_METHOD)
            self._pool = ProcessPool(
                max_workers=self.workers, context=context, initializer=die_with_parent
            )
        return self._pool

    def schedule(self, fn: Callable[P, T], *args: Any) -> Future[T]:
        if self._closing:
            raise asyncio.CancelledError("the worker is shutting down")
        try:
            future = self._running_pool().schedule(fn, args=args)
        except (BrokenProcessPool, RuntimeError):
            self._pool = None  # one fresh pool, then give up
            future = self._running_pool().schedule(fn, args=args)
        with self._unfinished_lock:
            self._unfinished.add(future)
        future.add_done_callback(self._forget)
        return cast("Future[T]", future)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a pool process. Cancelling the caller kills that process."""
        future = self.schedule(fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # wrap_future cancels the pebble future too; saying it again costs nothing and
            # does not depend on that: a running future's cancel() kills its process.
            future.cancel()
            raise
        except (ProcessExpired, BrokenProcessPool) as died:
            if self._closing:
                # Cut short by the worker's shutdown, like its async work: handed back.
                raise asyncio.CancelledError("the worker shut down during this step") from died
            raise CpuStepDied(f"the process running this step died: {died}") from died

    def _forget(self, future: Future[Any]) -> None:
        with self._unfinished_lock:
            self._unfinished.discard(future)

    def reopen(self) -> None:
        """Accept steps again after :meth:`close` (a broker started again: tests, embedded)."""
        self._closing = False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the pool: running steps are killed and their jobs handed back."""
        self._closing = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.stop()  # type: ignore[no-untyped-call]
        try:
            pool.join(timeout)
        except TimeoutError:
            logger.warning("CPU pool processes still running %.0f s after stop", timeout)
        # pebble's stop can kill a running step's process without ever finishing its future
        # (about one close in six with a step running): its awaiter would wait forever.
        with self._unfinished_lock:
            unfinished = list(self._unfinished)
        for future in unfinished:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(BrokenProcessPool("the CPU pool was stopped"))
