"""Real Offload processes for system tests: start them, wait for them, stop them, read their logs.

Every process runs in its own session (so its own process group), with its own copy of the
environment whose ``OFFLOAD_*`` settings come only from the test, and writes stdout and stderr
to one log file. :meth:`Processes.close` kills every group it started, whatever happened, and
every failed wait puts all the logs into its assertion message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
from taskiq.kicker import AsyncKicker

from brokers.contract import JobRecord, new_job_id
from brokers.factory import build_backend
from brokers.lifecycle import JOB_KIND_LABEL
from schemas.jobs import JobStatus
from service.deps import LOCAL_TENANT
from service.settings import Settings
from service.submission import DEFAULT_MAX_ATTEMPTS

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
"""The virtualenv's scripts: ``offload`` and ``taskiq`` sit beside the running interpreter."""

TASKIQ_LISTENING = "Listening started."
"""Logged by a plain ``taskiq worker`` process once its broker is up and it takes messages."""
OFFLOAD_WORKER_READY = "offload worker ready:"
"""Logged by each ``offload worker`` process once its broker is up and it takes jobs."""
SCHEDULER_STARTED = "Startup completed."
"""Logged by ``taskiq scheduler`` once its sources are up."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def job_log_line(job_id: str, status: str) -> str:
    """The ``offload.jobs`` log message for one state change (see brokers.lifecycle.log_job)."""
    return f"job {job_id} {status}"


@dataclass
class Proc:
    """One started process (the leader of its own process group) and its log file."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path
    base_url: str | None = None
    signalled: list[int] = field(default_factory=list)
    """Signals this test sent it, to tell them from ones sent by something else."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return "running"
        if code < 0 and -code not in self.signalled:
            name = signal.Signals(-code).name
            return f"killed by {name}, which this test did not send"
        return f"exited with {code}"


@dataclass
class Processes:
    """Starts processes for one test and always cleans them up (see :meth:`close`)."""

    tmp_path: Path
    settings: dict[str, str] = field(default_factory=dict)
    """``OFFLOAD_*`` settings every process gets (besides ``OFFLOAD_DATA_DIR``)."""
    started: list[Proc] = field(default_factory=list)
    bin_dir: Path = BIN_DIR
    """Where ``offload`` is: this checkout's virtualenv unless a test installs another."""
    cwd: Path = REPO_ROOT
    """The working directory of every process started."""

    @property
    def data_dir(self) -> Path:
        return self.tmp_path / "data"

    def env(self, **settings: str) -> dict[str, str]:
        """A fresh environment: the test's own, minus any inherited ``OFFLOAD_*`` setting."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("OFFLOAD_")}
        env["OFFLOAD_DATA_DIR"] = str(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.settings)
        env.update(settings)
        return env

    # -- starting ---------------------------------------------------------------------------

    def start(self, name: str, argv: list[str], **settings: str) -> Proc:
        log_path = self.tmp_path / f"{name}.log"
        if log_path.exists():
            log_path = self.tmp_path / f"{name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env(**settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name=name, argv=argv, popen=popen, log_path=log_path)
        self.started.append(proc)
        return proc

    def serve(
        self,
        name: str = "serve",
        *,
        wait: bool = True,
        timeout: float = 30,
        **settings: str,
    ) -> Proc:
        """``offload serve`` on a free port; with ``wait``, returns once ``/healthz`` answers."""
        port = free_port()
        argv = [str(self.bin_dir / "offload"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = self.start(name, argv, **settings)
        proc.base_url = f"http://127.0.0.1:{port}"
        if wait:
            self.wait_healthy(proc, timeout=timeout)
        return proc

    def offload_worker(
        self,
        name: str = "worker",
        *args: str,
        wait: bool = True,
        timeout: float = 30,
        **settings: str,
    ) -> Proc:
        """``offload worker [args]``; with ``wait``, returns once it logs that it is ready."""
        proc = self.start(name, [str(self.bin_dir / "offload"), "worker", *args], **settings)
        if wait:
            self.wait_for_log(proc, OFFLOAD_WORKER_READY, timeout=timeout)
        return proc

    def taskiq_worker(
        self,
        name: str = "taskiq-worker",
        *modules: str,
        wait: bool = True,
        timeout: float = 30,
        **settings: str,
    ) -> Proc:
        """``taskiq worker brokers:broker tasks [modules] --workers 1``, the plain TaskiQ CLI."""
        argv = [str(BIN_DIR / "taskiq"), "worker", "brokers:broker", "tasks", *modules]
        proc = self.start(name, [*argv, "--workers", "1"], **settings)
        if wait:
            self.wait_for_log(proc, TASKIQ_LISTENING, timeout=timeout)
        return proc

    def taskiq_scheduler(
        self, name: str = "scheduler", *, wait: bool = True, timeout: float = 30, **settings: str
    ) -> Proc:
        """``taskiq scheduler scheduler:scheduler tasks``, the plain TaskiQ CLI."""
        argv = [str(BIN_DIR / "taskiq"), "scheduler", "scheduler:scheduler", "tasks"]
        proc = self.start(name, argv, **settings)
        if wait:
            self.wait_for_log(proc, SCHEDULER_STARTED, timeout=timeout)
        return proc

    # -- waiting ----------------------------------------------------------------------------

    def split_by_runner(self, job_id: str, workers: list[Proc]) -> tuple[Proc, Proc]:
        """Wait until one of two workers logs that it runs the job; return (runner, other)."""
        started = job_log_line(job_id, "running")
        self.wait_until(
            lambda: any(started in worker.log() for worker in workers),
            f"{started!r} in a worker's log",
            timeout=5,
        )
        first, second = workers
        return (first, second) if started in first.log() else (second, first)

    def wait_until(
        self,
        condition: Callable[[], bool],
        what: str,
        *,
        timeout: float,
        watch: Proc | None = None,
        interval: float = 0.05,
    ) -> None:
        """Poll ``condition``; fail with every log if it stays false or ``watch`` exits."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return
            if watch is not None and not watch.alive():
                self.fail(f"{watch.name} {watch.describe_exit()} while waiting for {what}")
            if time.monotonic() >= deadline:
                self.fail(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def wait_for_log(self, proc: Proc, text: str, *, timeout: float = 30) -> None:
        self.wait_until(
            lambda: text in proc.log(),
            f"{text!r} in {proc.name}'s log",
            timeout=timeout,
            watch=proc,
        )

    def wait_healthy(self, proc: Proc, *, timeout: float = 30) -> None:
        assert proc.base_url is not None

        def healthy() -> bool:
            try:
                response = httpx.get(f"{proc.base_url}/healthz", timeout=1.0)
            except httpx.TransportError:
                return False
            return response.status_code == 200

        self.wait_until(healthy, f"{proc.base_url}/healthz", timeout=timeout, watch=proc)

    # -- stopping ---------------------------------------------------------------------------

    def terminate(self, proc: Proc, *, timeout: float) -> int:
        """SIGTERM the process (not its group) and wait; fail if it outlives ``timeout``."""
        if proc.alive():
            proc.signalled.append(signal.SIGTERM)
            os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"{proc.name} did not exit within {timeout:g} s of SIGTERM")

    def kill(self, proc: Proc) -> None:
        """``kill -9`` the process's whole group (the worker and its children) and reap it.

        The group id is the leader's pid; once the leader is reaped and its group is empty that
        number may belong to someone else's process, so a dead leader's group is only signalled
        while /proc still shows members in it.
        """
        if proc.alive() or _group_has_members(proc.pid):
            proc.signalled.append(signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=10)

    def close(self) -> None:
        """Kill every process group this test started, even ones whose leader already exited."""
        for proc in self.started:
            self.kill(proc)

    # -- reporting --------------------------------------------------------------------------

    def logs(self) -> str:
        parts = []
        for proc in self.started:
            header = f"===== {proc.name} ({' '.join(proc.argv)}; {proc.describe_exit()}) ====="
            parts.append(f"{header}\n{proc.log()}")
        return "\n".join(parts)

    def fail(self, message: str) -> NoReturn:
        raise AssertionError(f"{message}\n{self.logs()}")

    def check(self, condition: object, message: str) -> None:
        """``assert`` with every process log in the message."""
        if not condition:
            self.fail(message)


def _group_has_members(pgid: int) -> bool:
    """Whether any process is still in process group ``pgid`` (Linux /proc; else assume so)."""
    proc_root = Path("/proc")
    if not (proc_root / "self" / "stat").exists():
        return True
    for stat in proc_root.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def job_ids_in(log: str, status: str, candidates: Iterable[str]) -> set[str]:
    """Which of ``candidates`` the log says reached ``status`` (e.g. ``running``)."""
    return {job_id for job_id in candidates if job_log_line(job_id, status) in log}


class InProcessJobs:
    """Submit jobs to a data directory without the API, and read them back from its store.

    The test process's own ``brokers.backend`` was built for the session's data directory,
    so this builds a second backend for the test's; tasks are kicked by name, since they are
    registered on the global broker.
    """

    def __init__(self, settings: Settings) -> None:
        self.backend = build_backend(settings)

    async def __aenter__(self) -> InProcessJobs:
        await self.backend.broker.startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.backend.broker.shutdown()

    async def submit(
        self,
        task_name: str,
        *args: Any,
        request: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Store a QR-kind job, then queue ``task_name(*args, **kwargs)`` for it with the job's
        id and kind label (service.submission.submit_job does both in one transaction; a
        worker treats the two the same). ``request`` is what the job record keeps."""
        now = time.time()
        job = JobRecord(
            id=new_job_id(now),
            tenant=LOCAL_TENANT,
            kind="qr",
            request=request if request is not None else {"args": list(args), "kwargs": kwargs},
            created_at=now,
            expires_at=now + self.backend.settings.job_ttl_seconds,
            max_attempts=DEFAULT_MAX_ATTEMPTS,
        )
        await self.backend.store.create(job)
        labels: dict[str, Any] = {JOB_KIND_LABEL: "qr"}
        kicker: AsyncKicker[Any, Any] = AsyncKicker(task_name, self.backend.broker, labels)
        await kicker.with_task_id(job.id).kiq(*args, **kwargs)
        return job.id

    async def get(self, job_id: str) -> JobRecord:
        job = await self.backend.store.get(job_id)
        assert job is not None, f"no job {job_id}"
        return job

    async def wait_for(
        self,
        job_id: str,
        statuses: set[JobStatus],
        *,
        timeout: float,
        processes: Processes,
    ) -> JobRecord:
        """Poll the store until the job reaches one of ``statuses``; fail with every log."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if job.status in statuses:
                return job
            if time.monotonic() >= deadline:
                processes.fail(
                    f"job {job_id} did not reach {sorted(statuses)} in {timeout:g} s: {job}"
                )
            await asyncio.sleep(0.05)
