"""The benchmark's Redis parts: raw TaskiQ against Offload on the same private redis-server.

One ``redis-server --port P --bind 127.0.0.1 --save "" --appendonly no`` on a free
loopback port, started here and stopped at the end (never the shared 6379). Every part
runs after a FLUSHALL with a fresh key prefix.

* drain: N jobs queued while no worker runs, then one worker; jobs/s = N / (last finish -
  first start), both taken by the worker. Raw TaskiQ: ``bench/raw_taskiq.py``'s no-op kicked
  with ``.kiq()``; its result is the ``time.time()`` at which it ran, so the span is the
  min-max of those. Offload: ``service.submission.submit_job`` (job hash + indexes + stream
  entry in one MULTI), ``jobs.started_at`` (set by the worker's admission) and
  ``finished_at`` (set when the outcome is recorded) from the job hashes. Offload also with
  two worker processes for the scaling figure.
* pickup: an idle worker, one job every 10 ms; pickup = the worker's timestamp - the
  ``time.time()`` read right after ``.kiq()`` / ``submit_job`` returned.
* http: ``offload serve`` on Redis (API only) against ``bench/bare_app.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bench.common import (
    PYTHON,
    attach_py_spy,
    free_port,
    http_detail,
    measure_server,
    offload_worker_argv,
    percentile,
    say,
    show_profile,
    spawn,
    stop,
    stop_py_spy,
    summarize_profile,
    wait_until_done,
)

TENANT = "bench"


@dataclass
class PrivateRedis:
    """A redis-server of our own, on a free loopback port."""

    root: Path
    binary: str = field(default_factory=lambda: shutil.which("redis-server") or "")
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        if not self.binary:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        while self.port in (0, 6379):
            self.port = free_port()
        workdir = self.root / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(workdir)]
        self.process = spawn(argv, workdir, "redis.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except RedisError as error:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on {self.port}") from error
            time.sleep(0.02)

    def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=True)

    def fresh(self, part: str) -> str:
        """FLUSHALL and a new key prefix for the next part."""
        with self.client() as client:
            client.flushall()
        return f"bench-{part}-{uuid.uuid4().hex[:6]}"

    def reset_stats(self) -> None:
        with self.client() as client:
            client.config_resetstat()

    def commands_per_job(self, jobs: int) -> dict[str, dict[str, float]]:
        """Commands Redis ran since ``reset_stats``, per job, and the server's µs in each
        per job. Commands a Lua script calls are counted too, and EVALSHA's time includes
        theirs. The benchmark's own polling (XINFO or ZCARD, every 50 ms) is included."""
        with self.client() as client:
            stats = client.info("commandstats")
        skip = ("cmdstat_config|resetstat", "cmdstat_info")
        rows = [
            (name.removeprefix("cmdstat_"), int(value["calls"]), int(value["usec"]))
            for name, value in stats.items()
            if name not in skip
        ]
        rows.sort(key=lambda row: -row[1])
        return {
            "calls": {name: calls / jobs for name, calls, _ in rows},
            "usec": {name: usec / jobs for name, _, usec in sorted(rows, key=lambda r: -r[2])},
        }

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=5)
            self.process = None


@dataclass
class RedisBench:
    args: argparse.Namespace
    root: Path
    server: PrivateRedis

    def part_dir(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    # ------------------------------------------------------------------ raw TaskiQ

    def raw_env(self, prefix: str) -> dict[str, str]:
        return {"BENCH_REDIS_URL": self.server.url, "BENCH_RAW_PREFIX": prefix}

    def raw_worker_argv(self) -> list[str]:
        argv = [PYTHON, "-m", "taskiq", "worker", "bench.raw_taskiq:broker"]
        return [*argv, *shlex.split(self.args.raw_worker_args), "--workers", "1"]

    async def raw_broker(self, prefix: str) -> tuple[Any, Any]:
        """A raw broker for this part, with the group made first at id 0 (see README)."""
        os.environ["BENCH_REDIS_URL"] = self.server.url  # read when bench.raw_taskiq imports
        from bench import raw_taskiq

        broker = raw_taskiq.make_broker(self.server.url, prefix)
        task = broker.register_task(raw_taskiq.noop.original_func, raw_taskiq.TASK_NAME)
        with self.server.client() as client:
            client.xgroup_create(f"{prefix}:queue", f"{prefix}:group", id="0", mkstream=True)
        await broker.startup()  # its own XGROUP CREATE now answers BUSYGROUP, ignored
        return broker, task

    def raw_done(self, client: Redis, prefix: str) -> int:
        """Messages delivered and acknowledged; TaskiQ acks after the result is saved."""
        for group in client.xinfo_groups(f"{prefix}:queue"):  # type: ignore[union-attr]
            if group["name"] == f"{prefix}:group":
                return int(group["entries-read"] or 0) - int(group["pending"])
        return 0

    def raw_results(self, client: Redis, task_ids: list[str]) -> tuple[list[float], int]:
        stamps, errors = [], 0
        for chunk in range(0, len(task_ids), 1000):
            for raw in client.mget(task_ids[chunk : chunk + 1000]):  # type: ignore[union-attr]
                result = json.loads(raw)
                if result["is_err"]:
                    errors += 1
                else:
                    stamps.append(float(result["return_value"]))
        return stamps, errors

    async def raw_drain(self) -> dict[str, Any]:
        prefix = self.server.fresh("raw-drain")
        data_dir = self.part_dir("redis-raw-drain")
        broker, task = await self.raw_broker(prefix)
        n = self.args.redis_jobs
        started = time.perf_counter()
        task_ids = [(await task.kiq()).task_id for _ in range(n)]
        kick_s = time.perf_counter() - started
        await broker.shutdown()
        self.server.reset_stats()
        spawned = time.time()
        worker = spawn(self.raw_worker_argv(), data_dir, "worker.log", self.raw_env(prefix))
        spy = None
        profile = data_dir / "worker.prof.txt"
        with self.server.client() as client:
            try:
                if self.args.py_spy:
                    spy = attach_py_spy(self.args.py_spy, worker, profile)
                finished, cpu = wait_until_done(
                    lambda: self.raw_done(client, prefix), n, worker, self.args.timeout,
                    {"redis": self.server.pid},
                )  # fmt: skip
            finally:
                if spy is not None:
                    stop_py_spy(spy)
                stop(worker, grace=1)  # an idle stream worker may not stop on SIGTERM (NOTES)
            commands = self.server.commands_per_job(n)
            stamps, errors = self.raw_results(client, task_ids)
        busy = max(stamps) - min(stamps)
        result = {
            "jobs": n,
            "enqueue_jobs_s": n / kick_s,
            "startup_s": min(stamps) - spawned,
            "wall_s": finished - spawned,
            "drain_s": busy,
            "drain_jobs_s": n / busy,
            "not_succeeded": errors + n - len(stamps),
            "log_lines_per_job": log_lines(data_dir / "worker.log") / n,
            "redis_commands_per_job": commands,
            **cpu,
        }
        if spy is not None:
            result["profile"] = summarize_profile(profile)
        return result

    async def raw_pickup(self) -> dict[str, Any]:
        prefix = self.server.fresh("raw-pickup")
        data_dir = self.part_dir("redis-raw-pickup")
        broker, task = await self.raw_broker(prefix)
        worker = spawn(self.raw_worker_argv(), data_dir, "worker.log", self.raw_env(prefix))
        kicked: dict[str, tuple[float, float]] = {}

        async def kick() -> str:
            before = time.time()
            sent = await task.kiq()
            kicked[sent.task_id] = (before, time.time())
            return str(sent.task_id)

        try:
            with self.server.client() as client:
                ids = await self.paced(kick, lambda: self.raw_done(client, prefix), worker)
                replies = client.mget(ids)
        finally:
            stop(worker, grace=1)
            await broker.shutdown()
        ran = [json.loads(reply)["return_value"] for reply in replies]  # type: ignore[union-attr]
        return pickup_figures([kicked[i] for i in ids], {"run": ran})

    async def paced(self, kick: Any, done: Any, worker: subprocess.Popen[bytes]) -> list[str]:
        """20 warm-up jobs (the first also waits for the worker to start), then
        ``--pickup-jobs`` jobs one every ``--pickup-interval-ms``; returns the measured ids."""
        interval = self.args.pickup_interval_ms / 1000
        warmup = 20
        for _ in range(warmup):
            await kick()
            await asyncio.sleep(interval)
        wait_until_done(done, warmup, worker, timeout=60)
        measured: list[str] = []
        origin = time.perf_counter()
        for i in range(self.args.pickup_jobs):
            delay = origin + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            measured.append(await kick())
        wait_until_done(done, warmup + self.args.pickup_jobs, worker, timeout=60)
        return measured

    # ------------------------------------------------------------------ Offload

    def offload_env(self, prefix: str) -> dict[str, str]:
        return {
            "OFFLOAD_BROKER_URL": self.server.url,
            "OFFLOAD_REDIS_PREFIX": prefix,
            "OFFLOAD_WORKER_CONCURRENCY": str(self.args.max_async_tasks),
            "OFFLOAD_LOG_LEVEL": self.args.worker_log_level,
        }

    async def offload_backend(self, prefix: str, data_dir: Path) -> Any:
        from brokers.factory import build_backend
        from service.settings import Settings

        settings = Settings(broker_url=self.server.url, redis_prefix=prefix, data_dir=data_dir)
        backend = build_backend(settings)
        await backend.broker.startup()  # makes the consumer group at id 0, as the API does
        return backend

    @staticmethod
    async def submit(backend: Any, task: Any) -> Any:
        from service.submission import submit_job

        return await submit_job(backend, task, tenant=TENANT, kind="qr", request={})

    @staticmethod
    def offload_done(client: Redis, backend: Any) -> int:
        keys = backend.store.keys
        with client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.index(TENANT, status="succeeded"))
            pipe.zcard(keys.index(TENANT, status="failed"))
            return int(sum(pipe.execute()))

    @staticmethod
    def job_fields(client: Redis, backend: Any, ids: list[str], *names: str) -> list[list[Any]]:
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(backend.store.keys.job(job_id), list(names))
            return list(pipe.execute())

    async def offload_drain(self, processes: int) -> dict[str, Any]:
        from bench.noop_tasks import noop

        prefix = self.server.fresh(f"offload-drain-{processes}")
        data_dir = self.part_dir(f"redis-offload-drain-{processes}")
        backend = await self.offload_backend(prefix, data_dir)
        n = self.args.redis_jobs
        started = time.perf_counter()
        ids = [(await self.submit(backend, noop)).id for _ in range(n)]
        submit_s = time.perf_counter() - started
        self.server.reset_stats()
        spawned = time.time()
        argv = offload_worker_argv(processes)
        worker = spawn(argv, data_dir, "worker.log", self.offload_env(prefix))
        spy = None
        profile = data_dir / "worker.prof.txt"
        try:
            if self.args.py_spy and processes == 1:
                spy = attach_py_spy(self.args.py_spy, worker, profile)
            with self.server.client() as client:
                finished, cpu = wait_until_done(
                    lambda: self.offload_done(client, backend), n, worker, self.args.timeout,
                    {"redis": self.server.pid},
                )  # fmt: skip
                commands = self.server.commands_per_job(n)
                rows = self.job_fields(client, backend, ids, "status", "started_at", "finished_at")
        finally:
            if spy is not None:
                stop_py_spy(spy)
            stop(worker)
            await backend.broker.shutdown()
            await backend.close()
        starts = sorted(float(r[1]) for r in rows if r[1])
        finishes = sorted(float(r[2]) for r in rows if r[2])
        busy = finishes[-1] - starts[0]
        lo, hi = n // 10, n - n // 10 - 1
        result = {
            "processes": processes,
            "jobs": n,
            "enqueue_jobs_s": n / submit_s,
            "startup_s": starts[0] - spawned,
            "wall_s": finished - spawned,
            "drain_s": busy,
            "drain_jobs_s": n / busy,
            "middle_80pct_jobs_s": (hi - lo) / (finishes[hi] - finishes[lo]),
            "not_succeeded": sum(r[0] != "succeeded" for r in rows),
            "log_lines_per_job": log_lines(data_dir / "worker.log") / n,
            "redis_commands_per_job": commands,
            **cpu,
        }
        if spy is not None:
            result["profile"] = summarize_profile(profile)
        return result

    async def offload_pickup(self) -> dict[str, Any]:
        from bench.noop_tasks import stamp

        prefix = self.server.fresh("offload-pickup")
        data_dir = self.part_dir("redis-offload-pickup")
        backend = await self.offload_backend(prefix, data_dir)
        worker = spawn(offload_worker_argv(1), data_dir, "worker.log", self.offload_env(prefix))
        kicked: dict[str, tuple[float, float]] = {}

        async def kick() -> str:
            before = time.time()
            job = await self.submit(backend, stamp)
            kicked[job.id] = (before, time.time())
            return str(job.id)

        try:
            with self.server.client() as client:
                ids = await self.paced(kick, lambda: self.offload_done(client, backend), worker)
                rows = self.job_fields(client, backend, ids, "started_at", "result")
        finally:
            stop(worker)
            await backend.broker.shutdown()
            await backend.close()
        started = [float(row[0]) for row in rows]
        ran = [json.loads(row[1])["data"]["ran_at"] for row in rows]
        return pickup_figures([kicked[i] for i in ids], {"admit": started, "run": ran})

    # ------------------------------------------------------------------ http

    async def http(self, reuse_bare: dict[str, Any] | None = None) -> dict[str, Any]:
        """``offload serve`` on Redis against the bare app; the bare app touches no backend,
        so its figure from the SQLite part of this run is reused when there is one."""
        offload = shutil.which("offload", path=str(Path(PYTHON).parent)) or ""
        serve = [offload] if offload else [PYTHON, "-m", "service.cli"]
        results: dict[str, Any] = {}
        servers = [("serve", [*serve, "serve"])]
        if reuse_bare and "bare" in reuse_bare:
            results["bare"] = {**reuse_bare["bare"], "reused": True}
            say(f"  {'bare':<16} {results['bare']['rps']:8.0f} req/s  (measured in [3])")
        else:
            servers.insert(0, ("bare", [PYTHON, "-m", "bench.bare_app"]))
        for name, argv in servers:
            prefix = self.server.fresh(f"http-{name}")
            data_dir = self.part_dir(f"redis-http-{name}")
            port = free_port()
            env = {"OFFLOAD_BROKER_URL": self.server.url, "OFFLOAD_REDIS_PREFIX": prefix}
            process = spawn([*argv, "--port", str(port)], data_dir, "server.log", env)
            try:
                measured = measure_server(
                    process, port, self.args.connections, self.args.wrk_threads,
                    self.args.http_warmup, self.args.http_duration,
                )  # fmt: skip
            finally:
                stop(process)
            if name == "serve":
                with self.server.client() as client:
                    measured["jobs_stored"] = int(client.xlen(f"{prefix}:queue"))  # type: ignore[arg-type]
            results[name] = measured
            say(f"  {name:<16} {measured['rps']:8.0f} req/s  {http_detail(measured)}")
        return results


def log_lines(path: Path) -> int:
    with path.open("rb") as log:
        return sum(1 for _ in log)


def pickup_figures(
    kicked: list[tuple[float, float]], stamps: dict[str, list[float]]
) -> dict[str, Any]:
    """Percentiles (ms) of each worker timestamp minus the time after the kick returned
    (the figure) and minus the time before it was called (``<key>_from_call``)."""
    figures: dict[str, Any] = {"jobs": len(kicked)}
    samples = {"kick_call": [1000 * (after - before) for before, after in kicked]}
    for key, values in stamps.items():
        samples[key] = [1000 * (v - after) for v, (_, after) in zip(values, kicked, strict=True)]
        samples[f"{key}_from_call"] = [
            1000 * (v - before) for v, (before, _) in zip(values, kicked, strict=True)
        ]
    for key, values in samples.items():
        figures[key] = {q: percentile(values, q) for q in (50, 99, 100)}
        figures[key]["min"] = min(values)
    return figures


def show_drain(label: str, drain: dict[str, Any]) -> None:
    cpu = drain.get("worker_cpu_us_per_job")
    redis_cpu = drain.get("redis_cpu_us_per_job")
    middle = drain.get("middle_80pct_jobs_s")
    say(
        f"  {label}: enqueue {drain['enqueue_jobs_s']:,.0f} jobs/s; worker start-up "
        f"{drain['startup_s']:.2f} s; drain {drain['drain_s']:.2f} s = "
        f"{drain['drain_jobs_s']:,.0f} jobs/s"
        + (f" (middle 80 %: {middle:,.0f})" if middle else "")
        + (f"; worker CPU {cpu:,.0f} us/job" if cpu else "")
        + (f"; redis-server CPU {redis_cpu:,.0f} us/job" if redis_cpu else "")
        + (f"; NOT SUCCEEDED {drain['not_succeeded']}" if drain["not_succeeded"] else "")
    )  # fmt: skip
    commands = drain["redis_commands_per_job"]
    say(
        f"    per job: {sum(commands['calls'].values()):.2f} Redis commands ("
        + ", ".join(f"{name} {n:.2f}" for name, n in commands["calls"].items() if n >= 0.005)
        + f"); {drain['log_lines_per_job']:.2f} worker log lines"
    )
    say(
        "    Redis µs per job by command: "
        + ", ".join(f"{name} {us:.1f}" for name, us in commands["usec"].items() if us >= 0.5)
    )
    show_profile(drain.get("profile"))


def show_pickup(label: str, key: str, what: str, pickup: dict[str, Any]) -> None:
    p = pickup[key]
    say(
        f"  {label:<8} {what:<38} p50 {p[50]:6.2f}  p99 {p[99]:6.2f}  max {p[100]:7.2f}  "
        f"min {p['min']:5.2f} ms"
    )
