"""Offload's benchmark, embedded SQLite and Redis, in one run, with ratios to the goals.

Run from the repository root::

    .venv/bin/python -m bench.run                 # everything, about two and a half minutes
    .venv/bin/python -m bench.run --only drain --jobs 20000
    .venv/bin/python -m bench.run --only redis    # the three Redis parts
    .venv/bin/python -m bench.run --only drain --py-spy /path/to/py-spy   # + worker profile

Every worker is ``offload worker --processes N`` as the product runs it, plus the
benchmark's task module (``bench/offload_worker.py``). Each SQLite part gets a fresh
temporary data directory (one SQLite file shared by the processes):

1. drain: N no-op jobs submitted through ``service.submission.submit_job`` with no worker
   running, then ONE worker process;
   jobs/s = N / (last jobs.finished_at - first jobs.started_at), so worker start-up is out.
2. pickup: an idle worker; one job submitted every 10 ms from this process; pickup =
   jobs.started_at (set by the worker's claim) - time.time() taken right after
   ``submit_job`` returned, i.e. just after the kick committed. Also shown from created_at.
3. http: req/s of ``POST /v1/jobs/qr`` under wrk for ``offload serve`` (embedded worker on),
   the same app with the worker off (bench/serve_no_worker.py) and a bare FastAPI app that
   validates the same body (bench/bare_app.py); same uvicorn settings, one process each.

The Redis parts (``redis-drain``, ``redis-pickup``, ``redis-http``; see bench/redis_parts.py)
run raw TaskiQ and Offload on one private redis-server started here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/run.py`: make `bench` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    PYTHON,
    attach_py_spy,
    children_of,
    cpu_seconds,
    free_port,
    http_detail,
    load,
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

HUEY_DRAIN_JOBS_S = 2900.0
HUEY_PICKUP_P99_MS = 100.0
GOAL_DRAIN_JOBS_S = 2900.0
GOAL_PICKUP_P99_MS = 10.0
GOAL_SUBMIT_RATIO = 0.5
RAW_TASKIQ_NOTES_JOBS_S = 3600.0
RAW_TASKIQ_NOTES_P99_MS = 0.8
GOAL_REDIS_DRAIN_RATIO = 0.8
GOAL_REDIS_PICKUP_P99_MS = 1.0
GOAL_REDIS_SCALING = 1.6
SQLITE_PARTS = ["drain", "pickup", "http"]
REDIS_PARTS = ["redis-drain", "redis-pickup", "redis-http"]


# --------------------------------------------------------------------------- helpers


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)


def count_status(conn: sqlite3.Connection, status: str) -> int:
    return int(conn.execute("SELECT count(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0])


def wait_until_succeeded(
    db: Path, expected: int, worker: Any, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Poll the jobs table read-only until ``expected`` jobs succeeded; also sample the
    worker processes' CPU time between the first and the last job seen done."""
    conn = read_only(db)
    try:
        return wait_until_done(lambda: count_status(conn, "succeeded"), expected, worker, timeout)
    finally:
        conn.close()


class Embedded:
    """The embedded backend in this process, pointed at a fresh directory per part.

    ``OFFLOAD_DATA_DIR`` is set before ``brokers`` is first imported, as a worker would
    see it; later parts re-point the same (stopped) backend with ``use_data_dir``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._imported = False

    def prepare(self, name: str) -> Path:
        data_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        if not self._imported:
            os.environ.pop("OFFLOAD_BROKER_URL", None)
            os.environ["OFFLOAD_DATA_DIR"] = str(data_dir)
            self._imported = True
        from brokers import backend

        backend.use_data_dir(data_dir)
        return data_dir

    @property
    def backend(self) -> Any:
        from brokers import backend

        return backend

    async def submit(self) -> Any:
        from bench.noop_tasks import noop
        from service.submission import submit_job

        return await submit_job(self.backend, noop, tenant="bench", kind="qr", request={})


def worker_argv(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The worker command and its environment, per ``--worker-cli``."""
    if args.worker_cli == "taskiq":  # the method of the first SQLite results (README)
        argv = [PYTHON, "-m", "taskiq", "worker", "brokers:broker", "tasks", "bench.noop_tasks"]
        argv += args.worker_module
        argv += ["--workers", "1", "--max-async-tasks", str(args.max_async_tasks)]
        return [*argv, "--log-level", args.worker_log_level], {}
    return offload_worker_argv(1), worker_env(args)


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """What ``offload worker`` reads: its concurrency and log level, and our extra modules."""
    return {
        "OFFLOAD_WORKER_CONCURRENCY": str(args.max_async_tasks),
        "OFFLOAD_LOG_LEVEL": args.worker_log_level,
        "BENCH_WORKER_MODULES": ",".join(args.worker_module),
    }


# --------------------------------------------------------------------------- 1. drain


async def bench_drain(args: argparse.Namespace, embedded: Embedded) -> dict[str, Any]:
    data_dir = embedded.prepare("drain")
    backend = embedded.backend
    await backend.broker.startup()
    started = time.perf_counter()
    for _ in range(args.jobs):
        await embedded.submit()
    submit_seconds = time.perf_counter() - started
    await backend.broker.shutdown()

    db = data_dir / "offload.db"
    spawned = time.time()
    argv, env = worker_argv(args)
    worker = spawn(argv, data_dir, "worker.log", env)
    spy = None
    try:
        if args.py_spy:
            spy = attach_py_spy(args.py_spy, worker, data_dir / "worker.prof.txt")
        finished, cpu = wait_until_succeeded(db, args.jobs, worker, timeout=args.timeout)
    finally:
        if spy is not None:
            stop_py_spy(spy)
        stop(worker)
    conn = read_only(db)
    first_start, last_finish, failed = conn.execute(
        "SELECT min(started_at), max(finished_at), sum(status != 'succeeded') FROM jobs"
    ).fetchone()
    conn.close()
    busy = last_finish - first_start
    result = {
        "jobs": args.jobs,
        "submit_jobs_s": args.jobs / submit_seconds,
        "startup_s": first_start - spawned,
        "wall_s": finished - spawned,
        "drain_s": busy,
        "drain_jobs_s": args.jobs / busy,
        "not_succeeded": failed,
        **cpu,
    }
    if spy is not None:
        result["profile"] = summarize_profile(data_dir / "worker.prof.txt")
    return result


# --------------------------------------------------------------------------- 2. pickup


async def bench_pickup(args: argparse.Namespace, embedded: Embedded) -> dict[str, Any]:
    data_dir = embedded.prepare("pickup")
    backend = embedded.backend
    await backend.broker.startup()
    db = data_dir / "offload.db"
    argv, env = worker_argv(args)
    worker = spawn(argv, data_dir, "worker.log", env)
    try:
        warmup = 20
        for _ in range(warmup):  # the first one also waits for the worker to start
            await embedded.submit()
            await asyncio.sleep(args.pickup_interval_ms / 1000)
        wait_until_succeeded(db, warmup, worker, timeout=60)
        child = children_of(worker.pid)[0]
        idle_before = cpu_seconds(child) or 0.0
        await asyncio.sleep(1.0)
        idle_cpu = (cpu_seconds(child) or 0.0) - idle_before

        kicked: dict[str, tuple[float, float]] = {}
        interval = args.pickup_interval_ms / 1000
        origin = time.perf_counter()
        for i in range(args.pickup_jobs):
            delay = origin + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            job = await embedded.submit()
            kicked[job.id] = (time.time(), job.created_at)
        wait_until_succeeded(db, warmup + args.pickup_jobs, worker, timeout=60)
    finally:
        await backend.broker.shutdown()
        stop(worker)
    conn = read_only(db)
    started = dict(conn.execute("SELECT id, started_at FROM jobs").fetchall())
    conn.close()
    after_kick = [1000 * (started[i] - kicked[i][0]) for i in kicked]
    after_create = [1000 * (started[i] - kicked[i][1]) for i in kicked]
    return {
        "jobs": len(kicked),
        "idle_worker_cpu_pct": 100 * idle_cpu,
        "kick": {q: percentile(after_kick, q) for q in (50, 99, 100)},
        "create": {q: percentile(after_create, q) for q in (50, 99, 100)},
        "min_kick_ms": min(after_kick),
        "over_10ms": sum(v > 10 for v in after_kick),
    }


# --------------------------------------------------------------------------- 3. http


def bench_http(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    offload = shutil.which("offload", path=str(Path(PYTHON).parent)) or ""
    serve = [offload] if offload else [PYTHON, "-m", "service.cli"]
    servers = [
        ("bare", [PYTHON, "-m", "bench.bare_app"]),
        ("serve_no_worker", [PYTHON, "-m", "bench.serve_no_worker"]),
        ("serve", [*serve, "serve"]),
    ]
    results: dict[str, Any] = {"load": "wrk" if shutil.which("wrk") else "httpx fallback"}
    for name, argv in servers:
        data_dir = Path(tempfile.mkdtemp(prefix=f"http-{name}-", dir=root))
        port = free_port()
        process = spawn([*argv, "--port", str(port)], data_dir, "server.log")
        try:
            measured = measure_server(
                process, port, args.connections, args.wrk_threads, args.http_warmup,
                args.http_duration,
            )  # fmt: skip
        finally:
            stop(process)
        db = data_dir / "offload.db"
        if db.exists():
            conn = read_only(db)
            measured["jobs_stored"] = int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
            measured["jobs_succeeded"] = count_status(conn, "succeeded")
            conn.close()
        results[name] = measured
        say(f"  {name:<16} {measured['rps']:8.0f} req/s  {http_detail(measured)}")
    return results


# --------------------------------------------------------------------------- report


def calibrate() -> float:
    """CPU seconds this process takes for 10 million ``total += i`` steps in pure Python:
    compares runs across machines and loads (about 0.4 s on an idle 3 GHz core)."""
    started = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return 5 * (time.process_time() - started)


def calibration(seconds: float) -> str:
    return f"1e7 Python additions take {seconds:.2f} s of CPU (~0.4 s on an idle 3 GHz core)"


def provenance() -> str:
    """The commit measured and the product files changed on top of it (not bench/)."""
    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    try:
        head = subprocess.run([*git, "log", "-1", "--format=%h"], capture_output=True, text=True)
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    except OSError:
        return "commit unknown"
    changed = [
        line[3:] for line in status.stdout.splitlines()
        if not line[3:].startswith(("bench/", "tests/")) and line[3:].endswith(".py")
    ]  # fmt: skip
    return f"commit {head.stdout.strip() or '?'}" + (
        f" + uncommitted changes to {', '.join(changed)}" if changed else ""
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, taskiq {version('taskiq')}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


Row = tuple[str, str, str, str, str]


def sqlite_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    drain = results.get("drain")
    if drain:
        value = drain["drain_jobs_s"]
        rows.append((
            "drain, 1 worker (jobs/s)", f"{value:,.0f}", f">= {GOAL_DRAIN_JOBS_S:,.0f}",
            f"{value / GOAL_DRAIN_JOBS_S:.2f}x", f"{value / HUEY_DRAIN_JOBS_S:.2f}x of Huey 2,900",
        ))  # fmt: skip
        cpu = drain.get("worker_cpu_us_per_job")
        if cpu:
            bound = 1e6 / cpu
            rows.append((
                "  same, CPU-bound: 1e6/(worker CPU us/job)", f"{bound:,.0f}",
                f">= {GOAL_DRAIN_JOBS_S:,.0f}", f"{bound / GOAL_DRAIN_JOBS_S:.2f}x",
                f"{bound / HUEY_DRAIN_JOBS_S:.2f}x of Huey 2,900",
            ))  # fmt: skip
    pickup = results.get("pickup")
    if pickup:
        p99 = pickup["kick"][99]
        rows.append((
            "pickup p99, kick->start (ms)", f"{p99:.2f}", f"<= {GOAL_PICKUP_P99_MS:g}",
            f"{GOAL_PICKUP_P99_MS / p99:.2f}x",
            f"{HUEY_PICKUP_P99_MS / p99:.1f}x faster than Huey 100",
        ))  # fmt: skip
        rows.append((
            "pickup p99, created->start (ms)", f"{pickup['create'][99]:.2f}", "(info)",
            f"{GOAL_PICKUP_P99_MS / pickup['create'][99]:.2f}x", "",
        ))  # fmt: skip
    http = results.get("http")
    if http:
        for name, label in (("serve", "offload serve"), ("serve_no_worker", "serve, worker off")):
            rows += submit_rows(f"submit req/s, {label}/bare", http[name], http["bare"])
    return rows


def submit_rows(
    label: str, this: dict[str, Any], bare: dict[str, Any], note: str = ""
) -> list[Row]:
    ratio = this["rps"] / bare["rps"]
    rows: list[Row] = [(
        label, f"{this['rps']:,.0f}/{bare['rps']:,.0f}", f">= {GOAL_SUBMIT_RATIO:g}{note}",
        f"{ratio:.2f} ({ratio / GOAL_SUBMIT_RATIO:.2f}x)", "",
    )]  # fmt: skip
    cpu_bare, cpu_this = bare.get("server_cpu_us_per_req"), this.get("server_cpu_us_per_req")
    if cpu_bare and cpu_this:
        by_cpu = cpu_bare / cpu_this
        rows.append((
            "  same, by server CPU us/req (bare/this)", f"{cpu_bare:,.0f}/{cpu_this:,.0f} us",
            f">= {GOAL_SUBMIT_RATIO:g}{note}", f"{by_cpu:.2f} ({by_cpu / GOAL_SUBMIT_RATIO:.2f}x)",
            "",
        ))  # fmt: skip
    return rows


def redis_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    drain = results.get("redis_drain")
    if drain:
        raw, one = drain["raw"], drain["offload_1"]
        rows.append((
            "redis drain, raw TaskiQ 1 process (jobs/s)", f"{raw['drain_jobs_s']:,.0f}",
            "(reference)", "",
            f"{raw['drain_jobs_s'] / RAW_TASKIQ_NOTES_JOBS_S:.2f}x of NOTES' ~3,600",
        ))  # fmt: skip
        ratio = one["drain_jobs_s"] / raw["drain_jobs_s"]
        goal = GOAL_REDIS_DRAIN_RATIO * raw["drain_jobs_s"]
        rows.append((
            "redis drain, Offload 1 process (jobs/s)", f"{one['drain_jobs_s']:,.0f}",
            f">= 0.8x raw = {goal:,.0f}", f"{ratio / GOAL_REDIS_DRAIN_RATIO:.2f}x",
            f"{ratio:.2f}x raw TaskiQ",
        ))  # fmt: skip
        for key, label in (("worker", "worker"), ("redis", "redis-server")):
            cpu_raw = raw.get(f"{key}_cpu_us_per_job")
            cpu_one = one.get(f"{key}_cpu_us_per_job")
            if cpu_raw and cpu_one:
                by_cpu = cpu_raw / cpu_one
                rows.append((
                    f"  {label} CPU us/job, raw/Offload", f"{cpu_raw:,.0f}/{cpu_one:,.0f}",
                    ">= 0.8" if key == "worker" else "(info)",
                    f"{by_cpu / GOAL_REDIS_DRAIN_RATIO:.2f}x" if key == "worker" else "",
                    f"Offload {1e6 / cpu_one:,.0f} jobs/s on a free core"
                    if key == "worker" else f"{cpu_one / cpu_raw:.1f}x raw's Redis work",
                ))  # fmt: skip
        two = drain.get("offload_2")
        if two:
            scaling = two["drain_jobs_s"] / one["drain_jobs_s"]
            processes = two["processes"]
            rows.append((
                f"redis drain, Offload {processes} processes / 1",
                f"{two['drain_jobs_s']:,.0f}/{one['drain_jobs_s']:,.0f}",
                f">= {GOAL_REDIS_SCALING:g}", f"{scaling / GOAL_REDIS_SCALING:.2f}x",
                f"{scaling:.2f}; = {two['drain_jobs_s'] / raw['drain_jobs_s']:.2f}x raw's drain",
            ))  # fmt: skip
            w1, wp = one.get("worker_cpu_us_per_job"), two.get("worker_cpu_us_per_job")
            rp = two.get("redis_cpu_us_per_job")
            if w1 and wp and rp:
                cores = os.cpu_count() or 1
                ceiling = min(processes * w1 / wp, cores * w1 / (wp + rp))
                rows.append((
                    f"  ceiling on {cores} free cores, from CPU us/job", f"{ceiling:.2f}",
                    f">= {GOAL_REDIS_SCALING:g}", f"{ceiling / GOAL_REDIS_SCALING:.2f}x",
                    f"min({processes}*{w1:,.0f}/{wp:,.0f}, "
                    f"{cores}*{w1:,.0f}/({wp:,.0f}+{rp:,.0f}))",
                ))  # fmt: skip
    pickup = results.get("redis_pickup")
    if pickup:
        raw_p99 = pickup["raw"]["run"][99]
        rows.append((
            "redis pickup p99, raw TaskiQ kiq->ran (ms)", f"{raw_p99:.2f}",
            f"<= {GOAL_REDIS_PICKUP_P99_MS:g}", f"{GOAL_REDIS_PICKUP_P99_MS / raw_p99:.2f}x",
            f"from the call: {pickup['raw']['run_from_call'][99]:.2f}; "
            f"NOTES' ~{RAW_TASKIQ_NOTES_P99_MS:g}",
        ))  # fmt: skip
        for key, label in (("run", "submit->ran"), ("admit", "submit->started_at")):
            p99 = pickup["offload"][key][99]
            ratio = f"{GOAL_REDIS_PICKUP_P99_MS / p99:.2f}x" if p99 > 0 else "n/a (< 0)"
            rows.append((
                f"redis pickup p99, Offload {label} (ms)", f"{p99:.2f}",
                f"<= {GOAL_REDIS_PICKUP_P99_MS:g}" if key == "run" else "(info, README)", ratio,
                f"from the call: {pickup['offload'][f'{key}_from_call'][99]:.2f}"
                + (f"; {p99 / raw_p99:.2f}x raw's" if key == "run" else ""),
            ))  # fmt: skip
    http = results.get("redis_http")
    if http:
        rows += submit_rows(
            "redis submit req/s, offload serve/bare", http["serve"], http["bare"], " (as SQLite)"
        )
    return rows


def table(results: dict[str, Any]) -> None:
    rows = sqlite_rows(results) + redis_rows(results)
    if not rows:
        return
    header = ("figure", "value", "goal", "vs goal", "reference")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    say("")
    say("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    say("  ".join("-" * w for w in widths))
    for row in rows:
        say("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    say("('vs goal' >= 1.00x meets the goal; for latency it is goal/value.)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=[*SQLITE_PARTS, *REDIS_PARTS, "sqlite", "redis"],
        help="run only these parts (repeatable); 'sqlite' and 'redis' name three each",
    )
    parser.add_argument("--jobs", type=int, default=5000, help="jobs to drain on SQLite (5000)")
    parser.add_argument("--redis-jobs", type=int, default=5000, help="jobs to drain on Redis")
    parser.add_argument("--pickup-jobs", type=int, default=500)
    parser.add_argument("--pickup-interval-ms", type=float, default=10.0)
    parser.add_argument(
        "--max-async-tasks",
        type=int,
        default=None,
        help="Offload workers' OFFLOAD_WORKER_CONCURRENCY; default Offload's own (8)",
    )
    parser.add_argument(
        "--worker-log-level",
        default="INFO",
        help="Offload workers' OFFLOAD_LOG_LEVEL (INFO, Offload's default: 2 lines per job)",
    )
    parser.add_argument(
        "--worker-cli",
        choices=["offload", "taskiq"],
        default="offload",
        help="SQLite parts only: 'taskiq' runs `taskiq worker brokers:broker ...` with "
        "--log-level as the first SQLite results did (TaskiQ's per-job line not muted)",
    )
    parser.add_argument(
        "--worker-module", action="append", default=[], help="extra module for the worker"
    )
    parser.add_argument(
        "--raw-worker-args",
        default="",
        help="extra arguments for raw TaskiQ's `taskiq worker` (default: none, TaskiQ's "
        "defaults: --log-level INFO, --max-async-tasks 100)",
    )
    parser.add_argument(
        "--redis-processes",
        type=int,
        default=2,
        help="Offload worker processes for the scaling figure (0: skip it)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--http-duration", type=float, default=5.0)
    parser.add_argument("--http-warmup", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="drain time limit (s)")
    parser.add_argument(
        "--py-spy", help="path to py-spy: profile the drain workers (SQLite, Offload on Redis)"
    )
    parser.add_argument("--json", type=Path, help="also write all figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dirs")
    args = parser.parse_args(argv)
    only = args.only or ["sqlite", "redis"]
    groups = {"sqlite": SQLITE_PARTS, "redis": REDIS_PARTS}
    args.parts = [
        p for p in [*SQLITE_PARTS, *REDIS_PARTS] if any(p in groups.get(o, [o]) for o in only)
    ]
    return args


async def sqlite_parts(args: argparse.Namespace, root: Path, embedded: Embedded) -> dict[str, Any]:
    results: dict[str, Any] = {}
    parts = args.parts
    if "drain" in parts:
        say(f"\n[1] drain {args.jobs} no-op jobs with one worker process ({load()})")
        drain = results["drain"] = await bench_drain(args, embedded)
        say(
            f"  submit_job in-process: {drain['submit_jobs_s']:,.0f} jobs/s; worker start-up "
            f"{drain['startup_s']:.2f} s; wall {drain['wall_s']:.2f} s"
        )
        cpu = drain.get("worker_cpu_us_per_job")
        say(
            f"  drain {drain['drain_s']:.2f} s = {drain['drain_jobs_s']:,.0f} jobs/s"
            + (f"; worker CPU {cpu:,.0f} us/job" if cpu else "")
            + (f"; NOT SUCCEEDED {drain['not_succeeded']}" if drain["not_succeeded"] else "")
        )
        show_profile(drain.get("profile"))
    if "pickup" in parts:
        say(
            f"\n[2] pickup: {args.pickup_jobs} jobs, one every {args.pickup_interval_ms:g} ms, "
            f"idle worker in another process ({load()})"
        )
        pickup = results["pickup"] = await bench_pickup(args, embedded)
        for key, label in (("kick", "kick committed -> started"), ("create", "created -> started")):
            p = pickup[key]
            say(f"  {label:<26} p50 {p[50]:6.2f}  p99 {p[99]:6.2f}  max {p[100]:7.2f} ms")
        say(
            f"  jobs over 10 ms: {pickup['over_10ms']}; idle worker CPU "
            f"{pickup['idle_worker_cpu_pct']:.0f}% of a core"
        )
    if "http" in parts:
        say(
            f"\n[3] POST /v1/jobs/qr, load: {'wrk' if shutil.which('wrk') else 'httpx fallback'}"
            f" -t{args.wrk_threads} -c{args.connections}, {args.http_warmup:g} s warm-up + "
            f"{args.http_duration:g} s ({load()})"
        )
        results["http"] = bench_http(args, root)
    return results


async def redis_parts(
    args: argparse.Namespace, root: Path, results_so_far: dict[str, Any]
) -> dict[str, Any]:
    from bench.redis_parts import PrivateRedis, RedisBench, show_drain, show_pickup

    results: dict[str, Any] = {}
    parts = args.parts
    server = PrivateRedis(root)
    server.start()
    with server.client() as client:
        version = client.info("server")["redis_version"]
    results["redis_server"] = f"redis-server {version} on 127.0.0.1:{server.port}"
    say(
        f"\nRedis: private {results['redis_server']} (--save '' --appendonly no); raw TaskiQ: "
        f"`taskiq worker bench.raw_taskiq:broker --workers 1 {args.raw_worker_args}`".rstrip()
        + "`; Offload: `offload worker --processes N` + bench tasks"
    )
    bench = RedisBench(args, root, server)
    try:
        if "redis-drain" in parts:
            n = args.redis_jobs
            say(f"\n[4] Redis drain: {n} no-op jobs queued, then the worker(s) ({load()})")
            drain: dict[str, Any] = {}
            drain["raw"] = await bench.raw_drain()
            show_drain("raw TaskiQ, 1 process", drain["raw"])
            drain["offload_1"] = await bench.offload_drain(1)
            show_drain("Offload, 1 process", drain["offload_1"])
            if args.redis_processes > 1:
                drain["offload_2"] = await bench.offload_drain(args.redis_processes)
                show_drain(f"Offload, {args.redis_processes} processes", drain["offload_2"])
            results["redis_drain"] = drain
        if "redis-pickup" in parts:
            say(
                f"\n[5] Redis pickup: {args.pickup_jobs} jobs, one every "
                f"{args.pickup_interval_ms:g} ms, idle worker ({load()})"
            )
            pickup = {"raw": await bench.raw_pickup()}
            show_pickup("raw", "run", ".kiq() returned -> task ran", pickup["raw"])
            show_pickup("", "run_from_call", "(.kiq() called -> task ran)", pickup["raw"])
            show_pickup("", "kick_call", "(.kiq() call itself)", pickup["raw"])
            pickup["offload"] = await bench.offload_pickup()
            offload = pickup["offload"]
            show_pickup("Offload", "admit", "submit_job returned -> started_at", offload)
            show_pickup("", "run", "submit_job returned -> task ran", offload)
            show_pickup("", "run_from_call", "(submit_job called -> task ran)", offload)
            show_pickup("", "kick_call", "(submit_job call itself)", offload)
            results["redis_pickup"] = pickup
        if "redis-http" in parts:
            say(
                f"\n[6] Redis: POST /v1/jobs/qr, same load as [3] -t{args.wrk_threads} "
                f"-c{args.connections}, {args.http_warmup:g} s warm-up + {args.http_duration:g} s "
                f"({load()})"
            )
            results["redis_http"] = await bench.http(reuse_bare=results_so_far.get("http"))
    finally:
        server.stop()
    return results


async def main_async(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    embedded = Embedded(root)
    results: dict[str, Any] = {"machine": machine()}
    results["code"] = provenance()
    say(f"Offload benchmark; {results['machine']}\nMeasuring {results['code']}")
    results["calibration_before"] = calibrate()
    say(f"CPU speed: {calibration(results['calibration_before'])}")
    embedded.prepare("settings")  # `brokers` (and bench.noop_tasks) import on SQLite here
    if args.max_async_tasks is None:
        args.max_async_tasks = embedded.backend.settings.worker_concurrency
    if args.worker_cli == "offload":
        worker = "offload worker --processes 1 (+ bench tasks)"
    else:
        worker = "taskiq worker brokers:broker tasks bench.noop_tasks --workers 1"
    say(
        f"SQLite worker: {worker}, concurrency {args.max_async_tasks}, log level "
        f"{args.worker_log_level}; data under {root}"
    )
    results.update(await sqlite_parts(args, root, embedded))
    if any(part in REDIS_PARTS for part in args.parts):
        results.update(await redis_parts(args, root, results))
    results["load_after"] = os.getloadavg()[0]
    results["calibration_after"] = calibrate()
    if provenance() != results["code"]:
        results["code_after"] = provenance()
        say(f"\nWARNING: the code changed during the run; now {results['code_after']}")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="offload-bench-"))
    started = time.monotonic()
    try:
        results = asyncio.run(main_async(args, root))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    table(results)
    say(
        f"\nReferences: Huey SqliteHuey ~{HUEY_DRAIN_JOBS_S:,.0f} jobs/s drain, pickup p99 "
        f"~{HUEY_PICKUP_P99_MS:g} ms (it polls); raw TaskiQ on Redis (NOTES) "
        f"~{RAW_TASKIQ_NOTES_JOBS_S:,.0f} jobs/s, pickup p99 ~{RAW_TASKIQ_NOTES_P99_MS:g} ms. "
        f"Took {time.monotonic() - started:.0f} s; load average now {results['load_after']:.2f}; "
        f"{calibration(results['calibration_after'])}."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
