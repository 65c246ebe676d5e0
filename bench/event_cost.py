"""What the job version and its announcement cost each transition, on both backends.

    .venv/bin/python -m bench.event_cost [--jobs 3000] [--rounds 3]

SQLite: the same start / progress / finish transactions (each its own commit, as a worker
makes them) with the ``jobs_version`` trigger and with it dropped. Redis: the same scripts
as they are, with ``changed()`` emptied (no HINCRBY, no PUBLISH), and as they are with one
subscriber listening; Redis's own time per script call (commandstats) besides the client's.
Times are CPU seconds of this process (the machine is shared: wall time is noise);
rounds alternate between the variants; medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.redis_parts import PrivateRedis
from brokers.contract import JobRecord, new_job_id
from brokers.redis import scripts
from brokers.redis.keys import Keys
from brokers.redis.store import RedisJobStore
from brokers.sqlite.database import Database
from brokers.sqlite.store import SqliteJobStore
from schemas.jobs import JobResult, Progress

PROGRESS = Progress(done=1, total=2)
RESULT = JobResult(data={"ok": True})


def jobs(count: int) -> list[JobRecord]:
    now = time.time()
    return [
        JobRecord(new_job_id(now), "local", "qr", {"data": "x"}, now, now + 3600, 3)
        for _ in range(count)
    ]


def sqlite_round(root: Path, count: int, mode: str) -> float:
    """Microseconds per transition (three per job, each its own commit, as a worker's
    admit, progress and finish). ``before``: the statements as they were, no trigger;
    ``trigger``: the same statements, the trigger bumping the version (what the store does);
    ``inline``: each statement bumping the version itself, the trigger then doing nothing
    (the alternative, which would change every writer)."""
    database = Database(root / f"{uuid.uuid4().hex}.db")
    conn = database.connection
    if mode == "before":
        conn.execute("DROP TRIGGER jobs_version")
    bump = "version = version + 1, " if mode == "inline" else ""
    batch = jobs(count)
    with database.transaction() as tx:
        for job in batch:
            SqliteJobStore.insert(tx, job)
    started = time.process_time()
    for job in batch:
        now = time.time()
        with database.transaction() as tx:
            fence = tx.execute(
                f"UPDATE jobs SET status = 'running', attempts = attempts + 1, {bump}"
                "fence = fence + 1, started_at = ? WHERE id = ? "
                "AND status IN ('queued', 'retrying', 'running') AND attempts < max_attempts "
                "AND expires_at > ? AND cancel_requested = 0 RETURNING fence",
                (now, job.id, now),
            ).fetchone()[0]
        with database.transaction() as tx:
            tx.execute(
                f"UPDATE jobs SET {bump}progress = ? WHERE id = ? AND status = 'running' "
                "AND fence = ? AND cancel_requested = 0 RETURNING id",
                (PROGRESS.model_dump_json(), job.id, fence),
            ).fetchone()
        with database.transaction() as tx:
            tx.execute(
                f"UPDATE jobs SET {bump}status = 'succeeded', finished_at = ?, result = ?, "
                "error = NULL WHERE id = ? AND status = 'running' AND fence = ? RETURNING id",
                (now, RESULT.model_dump_json(), job.id, fence),
            ).fetchone()
    elapsed = time.process_time() - started
    database.close()
    return elapsed / (3 * count) * 1e6


_CHANGED = (
    "    local version = redis.call('HINCRBY', job, 'version', 1)\n"
    "    redis.call('PUBLISH', prefix .. ':events', id .. ' ' .. version)\n"
)


def without_version(text: str) -> str:
    assert _CHANGED in text or "changed()" not in text
    return text.replace(_CHANGED, "")


def store_with(redis: Redis, prefix: str, bump: bool) -> RedisJobStore:
    """A store whose scripts bump and announce the version, or do neither."""
    saved: dict[str, Any] = {}
    names = [name for name in dir(scripts) if name.isupper()]
    if not bump:
        for name in names:
            saved[name] = getattr(scripts, name)
            setattr(scripts, name, without_version(saved[name]))
    try:
        return RedisJobStore(redis, Keys(prefix))
    finally:
        for name, text in saved.items():
            setattr(scripts, name, text)


async def redis_round(url: str, count: int, bump: bool, listener: bool) -> tuple[float, float]:
    """(client CPU µs per transition, Redis's µs per script call)."""
    redis = Redis.from_url(url, decode_responses=True)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    store = store_with(redis, prefix, bump)
    batch = jobs(count)
    for job in batch:
        await store.create(job)
    pubsub = redis.pubsub()
    drained = 0
    reader: asyncio.Task[None] | None = None
    if listener:
        await pubsub.subscribe(f"{prefix}:events")

        async def drain() -> None:
            nonlocal drained
            while True:
                if await pubsub.get_message(timeout=1.0) is not None:
                    drained += 1

        reader = asyncio.create_task(drain())
    await redis.config_resetstat()
    started = time.process_time()
    for job in batch:
        now = time.time()
        fence = (await store.begin_attempt(job.id, now)).fence
        await store.set_progress(job.id, fence, PROGRESS)
        await store.finish(job.id, fence, now, result=RESULT, error=None)
    elapsed = time.process_time() - started
    stats = await redis.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {"calls": 1, "usec": 0})
    if reader is not None:
        reader.cancel()
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await redis.aclose()
    return elapsed / (3 * count) * 1e6, int(evalsha["usec"]) / int(evalsha["calls"])


def median(runs: list[Any], pick: Callable[[Any], float] = float) -> float:
    return statistics.median(pick(run) for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.event_cost")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="offload-event-cost-") as tmp:
        root = Path(tmp)
        sqlite_runs: dict[str, list[float]] = {"before": [], "trigger": [], "inline": []}
        for _ in range(args.rounds):
            for mode, runs in sqlite_runs.items():
                runs.append(sqlite_round(root, args.jobs, mode))
        base = median(sqlite_runs["before"])
        for mode, runs in sqlite_runs.items():
            print(  # noqa: T201
                f"SQLite {mode}: CPU µs per transition {median(runs):.1f} "
                f"(x{median(runs) / base:.3f})"
            )
        server = PrivateRedis(root)
        server.start()
        try:
            variants: dict[str, list[tuple[float, float]]] = {
                "no version": [],
                "version + PUBLISH": [],
                "version + PUBLISH, 1 subscriber": [],
            }
            for _ in range(args.rounds):
                for name, bump, listener in (
                    ("no version", False, False),
                    ("version + PUBLISH", True, False),
                    ("version + PUBLISH, 1 subscriber", True, True),
                ):
                    variants[name].append(
                        asyncio.run(redis_round(server.url, args.jobs, bump, listener))
                    )
        finally:
            server.stop()
        base_client = median(variants["no version"], lambda run: run[0])
        base_server = median(variants["no version"], lambda run: run[1])
        for name, runs in variants.items():
            client, inside = median(runs, lambda run: run[0]), median(runs, lambda run: run[1])
            print(  # noqa: T201
                f"Redis {name}: client CPU µs per transition {client:.1f} "
                f"(x{client / base_client:.3f}), Redis µs per script {inside:.2f} "
                f"(x{inside / base_server:.3f})"
            )


if __name__ == "__main__":
    main()
