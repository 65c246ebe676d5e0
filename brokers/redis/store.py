"""The job store on Redis: a hash per job, sorted-set indexes, Lua for every transition."""

from __future__ import annotations

import json
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from brokers.contract import Admission, DeleteOutcome, JobQuery, JobRecord, PurgeReport
from brokers.redis import scripts
from brokers.redis.batch import RedisBatch, call_script
from brokers.redis.keys import Keys
from schemas.jobs import JobError, JobResult, JobStatus, Progress

WORKER_LOST = JobError(
    type="worker_lost",
    message="the worker running this job stopped before it finished, on every attempt",
    retryable=True,
).model_dump_json()


def _dump(model: JobError | JobResult | Progress | None) -> str:
    return "" if model is None else model.model_dump_json()


def _number(raw: str) -> float | None:
    return float(raw) if raw else None


def _record(fields: dict[str, str]) -> JobRecord:
    return JobRecord(
        id=fields["id"],
        tenant=fields["tenant"],
        kind=fields["kind"],
        status=JobStatus(fields["status"]),
        request=json.loads(fields["request"]),
        progress=Progress.model_validate_json(fields["progress"])
        if fields.get("progress")
        else None,
        attempts=int(fields["attempts"]),
        max_attempts=int(fields["max_attempts"]),
        created_at=float(fields["created_at"]),
        started_at=_number(fields.get("started_at", "")),
        finished_at=_number(fields.get("finished_at", "")),
        expires_at=float(fields["expires_at"]),
        error=JobError.model_validate_json(fields["error"]) if fields.get("error") else None,
        result=JobResult.model_validate_json(fields["result"]) if fields.get("result") else None,
        files_purged=fields.get("files_purged") == "1",
    )


class RedisJobStore:
    """Implements :class:`brokers.contract.JobStore` on one Redis server."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.batch = RedisBatch(redis)
        self._admit = redis.register_script(scripts.ADMIT)
        self._finish = redis.register_script(scripts.FINISH)
        self._release = redis.register_script(scripts.RELEASE)
        self._progress = redis.register_script(scripts.PROGRESS)
        self._delete = redis.register_script(scripts.DELETE)
        self._forget = redis.register_script(scripts.FORGET)

    def queue_create(self, pipe: Pipeline, job: JobRecord) -> None:
        """Add the commands that store a new job to ``pipe`` (a MULTI the caller runs)."""
        fields: dict[Any, Any] = {
            "id": job.id,
            "tenant": job.tenant,
            "kind": job.kind,
            "status": job.status.value,
            "request": json.dumps(job.request),
            "progress": _dump(job.progress),
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "created_at": repr(job.created_at),
            "started_at": "" if job.started_at is None else repr(job.started_at),
            "finished_at": "" if job.finished_at is None else repr(job.finished_at),
            "expires_at": repr(job.expires_at),
            "error": _dump(job.error),
            "result": _dump(job.result),
            "files_purged": int(job.files_purged),
        }
        pipe.hset(self.keys.job(job.id), mapping=fields)
        for key in (
            self.keys.index(job.tenant),
            self.keys.index(job.tenant, kind=job.kind),
            self.keys.index(job.tenant, status=job.status.value),
            self.keys.index(job.tenant, status=job.status.value, kind=job.kind),
        ):
            pipe.zadd(key, {job.id: 0})
        pipe.zadd(self.keys.files_expiry, {job.id: job.expires_at})
        pipe.zadd(self.keys.rows_expiry, {job.id: job.expires_at})

    async def create(self, job: JobRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.queue_create(pipe, job)
            await pipe.execute()

    async def get(self, job_id: str) -> JobRecord | None:
        fields = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        return _record(fields) if fields else None

    async def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        key = self.keys.index(
            query.tenant, None if query.status is None else query.status.value, query.kind
        )
        newest = f"({query.cursor}" if query.cursor else "+"
        ids = cast(
            list[str],
            await self.redis.zrevrangebylex(key, newest, "-", start=0, num=query.limit + 1),
        )
        page = ids[: query.limit]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in page:
                pipe.hgetall(self.keys.job(job_id))
            rows = await pipe.execute()
        records = [_record(fields) for fields in rows if fields]
        return records, (page[-1] if len(ids) > query.limit else None)

    async def begin_attempt(self, job_id: str, now: float) -> Admission:
        admit = call_script(self._admit, [self.keys.prefix], [job_id, repr(now), WORKER_LOST])
        return Admission(await self.batch.run(admit))

    async def finish(
        self, job_id: str, now: float, *, result: JobResult | None, error: JobError | None
    ) -> bool:
        status = JobStatus.FAILED if error is not None else JobStatus.SUCCEEDED
        record = call_script(
            self._finish,
            [self.keys.prefix],
            [job_id, repr(now), status.value, _dump(result), _dump(error)],
        )
        return bool(await self.batch.run(record))

    async def requeue(self, job_id: str) -> bool:
        return bool(await self._release(keys=[self.keys.prefix], args=[job_id]))

    async def set_progress(self, job_id: str, progress: Progress) -> None:
        await self._progress(keys=[self.keys.prefix], args=[job_id, progress.model_dump_json()])

    async def delete(self, job_id: str) -> DeleteOutcome:
        return DeleteOutcome(await self._delete(keys=[self.keys.prefix], args=[job_id]))

    async def purge_expired(self, now: float, tombstone_seconds: float) -> PurgeReport:
        report = PurgeReport()
        expired = cast(
            list[str], await self.redis.zrangebyscore(self.keys.files_expiry, "-inf", now)
        )
        if expired:
            async with self.redis.pipeline(transaction=True) as pipe:
                for job_id in expired:
                    pipe.hset(self.keys.job(job_id), mapping={"files_purged": 1, "result": ""})
                pipe.zrem(self.keys.files_expiry, *expired)
                await pipe.execute()
            report.files_of = list(expired)
        forgotten = cast(
            list[str],
            await self.redis.zrangebyscore(self.keys.rows_expiry, "-inf", now - tombstone_seconds),
        )
        for job_id in forgotten:
            report.rows_deleted += await self._forget(keys=[self.keys.prefix], args=[job_id])
        return report

    async def ping(self) -> None:
        await self.redis.ping()
