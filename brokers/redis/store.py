"""The job store on Redis: a hash per job, sorted-set indexes, Lua for every transition."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, cast

from redis.asyncio import Redis

from brokers.contract import (
    EXPIRED,
    WORKER_LOST,
    Admission,
    Admitted,
    CancelOutcome,
    DeleteOutcome,
    IdempotencyKey,
    JobQuery,
    JobRecord,
    PurgeReport,
    RetryOutcome,
    SubmitOutcomeUnknown,
    Submitted,
    SweepReport,
)
from brokers.redis import scripts
from brokers.redis.batch import RedisBatch, call_script
from brokers.redis.keys import Keys
from brokers.redis.webhooks import webhook_of
from schemas.jobs import AttemptError, JobError, JobResult, JobStatus, Progress

_WORKER_LOST = WORKER_LOST.model_dump_json()
_EXPIRED = EXPIRED.model_dump_json()
_WITHDRAWN_FOR = 86400
"""Seconds a withdrawn job id stays marked: far longer than any resend can take."""


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
        cancel_requested=fields.get("cancel_requested") == "1",
        lane=fields.get("lane") or "interactive",
        due_at=_number(fields.get("due_at", "")),
        timeout_s=_number(fields.get("timeout_s", "")),
        callback_url=fields.get("callback_url") or None,
        next_attempt_at=_number(fields.get("next_attempt_at", "")),
        attempt_errors=[
            AttemptError.model_validate(item)
            for item in json.loads(fields.get("attempt_errors") or "[]")
        ],
        # A job stored before versions existed has none: 0, so its first change makes 1.
        version=int(fields.get("version") or 0),
        webhook=webhook_of(fields),
    )


def _key_name(tenant: str, key: str) -> str:
    """Tenant and key as one unambiguous name (both may hold any character)."""
    return hashlib.sha256(f"{len(tenant)}:{tenant}:{key}".encode()).hexdigest()


class RedisJobStore:
    """Implements :class:`brokers.contract.JobStore` on one Redis server.

    Every write is a script that is safe to run twice: redis-py sends a command again when
    its reply was lost, after it may already have run.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.batch = RedisBatch(redis)
        self._submit = redis.register_script(scripts.SUBMIT)
        self._admit = redis.register_script(scripts.ADMIT)
        self._holds = redis.register_script(scripts.HOLDS)
        self._finish = redis.register_script(scripts.FINISH)
        self._release = redis.register_script(scripts.RELEASE)
        self._fail_undeliverable = redis.register_script(scripts.FAIL_UNDELIVERABLE)
        self._progress = redis.register_script(scripts.PROGRESS)
        self._delete = redis.register_script(scripts.DELETE)
        self._forget = redis.register_script(scripts.FORGET)
        self._purge_files = redis.register_script(scripts.PURGE_FILES)
        self._sweep = redis.register_script(scripts.SWEEP)
        self._settle = redis.register_script(scripts.SETTLE)
        self._cancel = redis.register_script(scripts.CANCEL)
        self._retry = redis.register_script(scripts.RETRY)
        self._schedule_retry = redis.register_script(scripts.SCHEDULE_RETRY)

    @staticmethod
    def _fields(job: JobRecord) -> list[Any]:
        return [
            "id", job.id, "tenant", job.tenant, "kind", job.kind, "status", job.status.value,
            "request", json.dumps(job.request), "progress", _dump(job.progress),
            "attempts", job.attempts, "max_attempts", job.max_attempts,
            "created_at", repr(job.created_at),
            "started_at", "" if job.started_at is None else repr(job.started_at),
            "finished_at", "" if job.finished_at is None else repr(job.finished_at),
            "expires_at", repr(job.expires_at), "error", _dump(job.error),
            "result", _dump(job.result), "files_purged", int(job.files_purged),
            "lane", job.lane, "due_at", "" if job.due_at is None else repr(job.due_at),
            "timeout_s", "" if job.timeout_s is None else repr(job.timeout_s),
            "next_attempt_at", "" if job.next_attempt_at is None else repr(job.next_attempt_at),
            "attempt_errors", json.dumps(
                [error.model_dump(mode="json") for error in job.attempt_errors]
            ),
            "callback_url", job.callback_url or "", "version", job.version,
        ]  # fmt: skip

    async def submit(
        self, job: JobRecord, message: bytes, stream: str, key: IdempotencyKey | None = None
    ) -> Submitted:
        """Store the job and add its entry to ``stream`` (its lane's), or to the delayed set
        when it is due later, in one script (safe to resend)."""
        ttl = max(1, int(job.expires_at - job.created_at) + 1)
        args = [
            job.id, job.tenant, job.kind, job.status.value, repr(job.expires_at), message,
            "" if key is None else _key_name(job.tenant, key.key),
            "" if key is None else key.fingerprint,
            ttl,
        ]  # fmt: skip
        reply = await self._submit(
            keys=[self.keys.prefix, stream], args=[*args, *self._fields(job)]
        )
        outcome = int(reply[0])
        if outcome == 2:
            return Submitted(str(reply[1]), created=False, fingerprint=str(reply[2]))
        if outcome == 3:
            raise SubmitOutcomeUnknown(job.id, "the job was withdrawn after a lost reply")
        return Submitted(job.id, created=True)  # 0: a resend of this very submit

    async def stored(self, job_id: str) -> bool:
        """After a submit with no reply: whether the job was stored. If not, it never will be
        (a SUBMIT still on its way finds the job marked withdrawn)."""
        answer = await self._settle(
            keys=[self.keys.prefix], args=[job_id, "check", "0", "", _WITHDRAWN_FOR]
        )
        return bool(answer == "stored")

    async def cancel(self, job_id: str, now: float) -> CancelOutcome:
        answer = await self._cancel(keys=[self.keys.prefix], args=[job_id, repr(now)])
        return CancelOutcome(answer)

    async def cancels_requested(self, job_ids: Sequence[str]) -> set[str]:
        if not job_ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.keys.job(job_id), "cancel_requested")
            marks = await pipe.execute()
        return {job_id for job_id, mark in zip(job_ids, marks, strict=True) if mark == "1"}

    async def retry(self, job_id: str, budget: int) -> RetryOutcome:
        answer = await self._retry(keys=[self.keys.prefix], args=[job_id, budget])
        return RetryOutcome(answer)

    async def withdraw(self, job_id: str, now: float, error: JobError) -> bool:
        answer = await self._settle(
            keys=[self.keys.prefix],
            args=[job_id, "withdraw", repr(now), error.model_dump_json(), _WITHDRAWN_FOR],
        )
        return bool(answer == "withdrawn")

    async def create(self, job: JobRecord) -> None:
        """Store a job with no message (tests, imports): the sweeper fails it if it waits."""
        async with self.redis.pipeline(transaction=True) as pipe:
            fields = dict(pairwise(self._fields(job)))
            if job.message is not None:
                fields["message"] = job.message
            pipe.hset(self.keys.job(job.id), mapping=fields)
            for key in (
                self.keys.index(job.tenant),
                self.keys.index(job.tenant, kind=job.kind),
                self.keys.index(job.tenant, status=job.status.value),
                self.keys.index(job.tenant, status=job.status.value, kind=job.kind),
            ):
                pipe.zadd(key, {job.id: 0})
            if not job.status.is_terminal:
                pipe.zadd(self.keys.unfinished, {job.id: 0})
            pipe.zadd(self.keys.files_expiry, {job.id: job.expires_at})
            pipe.zadd(self.keys.rows_expiry, {job.id: job.expires_at})
            await pipe.execute()

    async def get(self, job_id: str) -> JobRecord | None:
        fields = cast(dict[str, str], await self.redis.hgetall(self.keys.job(job_id)))
        return _record(fields) if fields else None

    async def get_many(self, job_ids: list[str]) -> dict[str, JobRecord | None]:
        """Several jobs in one round trip; None for each that does not exist."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.job(job_id))
            rows = await pipe.execute()
        return {
            job_id: _record(fields) if fields else None
            for job_id, fields in zip(job_ids, rows, strict=True)
        }

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

    async def begin_attempt(
        self, job_id: str, now: float, holder: str = "", token: str | int = ""
    ) -> Admitted:
        """``holder`` names the hand-out: asked again by the same hand-out (redis-py resent
        it after a lost reply), the answer is the same fencing token. ``token`` is the
        delivered message's: a stale copy of the job's message is dropped."""
        admit = call_script(
            self._admit,
            [self.keys.prefix],
            [job_id, repr(now), _WORKER_LOST, _EXPIRED, holder, str(token)],
        )
        verdict, fence = await self.batch.run(admit)
        return Admitted(Admission(verdict), int(fence))

    async def holds(self, job_id: str, fence: int) -> bool:
        return bool(await self._holds(keys=[self.keys.prefix], args=[job_id, fence]))

    async def finish(
        self,
        job_id: str,
        fence: int,
        now: float,
        *,
        result: JobResult | None,
        error: JobError | None,
        status: JobStatus | None = None,
    ) -> bool:
        if status is None:
            status = JobStatus.FAILED if error is not None else JobStatus.SUCCEEDED
        record = call_script(
            self._finish,
            [self.keys.prefix],
            [job_id, repr(now), status.value, _dump(result), _dump(error), fence],
        )
        return bool(await self.batch.run(record))

    async def schedule_retry(
        self, job_id: str, fence: int, now: float, error: JobError, due_at: float
    ) -> JobStatus | None:
        record = call_script(
            self._schedule_retry,
            [self.keys.prefix],
            [job_id, repr(now), error.model_dump_json(), repr(due_at), fence],
        )
        answer = await self.batch.run(record)
        return None if answer == "lost" else JobStatus(answer)

    async def release(self, job_id: str, fence: int) -> bool:
        return bool(await self._release(keys=[self.keys.prefix], args=[job_id, fence]))

    async def fail_undeliverable(self, job_id: str, now: float, error: JobError) -> bool:
        failed = await self._fail_undeliverable(
            keys=[self.keys.prefix], args=[job_id, repr(now), error.model_dump_json()]
        )
        return bool(failed)

    async def set_progress(self, job_id: str, fence: int, progress: Progress) -> bool:
        kept = await self._progress(
            keys=[self.keys.prefix], args=[job_id, progress.model_dump_json(), fence]
        )
        return bool(kept)

    async def delete(self, job_id: str) -> DeleteOutcome:
        return DeleteOutcome(await self._delete(keys=[self.keys.prefix], args=[job_id]))

    async def purge_expired(self, now: float, tombstone_seconds: float) -> PurgeReport:
        report = PurgeReport()
        expired = cast(
            list[str], await self.redis.zrangebyscore(self.keys.files_expiry, "-inf", now)
        )
        for job_id in expired:
            if await self._purge_files(keys=[self.keys.prefix], args=[job_id]):
                report.files_of.append(job_id)
        forgotten = cast(
            list[str],
            await self.redis.zrangebyscore(self.keys.rows_expiry, "-inf", now - tombstone_seconds),
        )
        for job_id in forgotten:
            report.rows_deleted += await self._forget(keys=[self.keys.prefix], args=[job_id])
        return report

    async def sweep(self, now: float) -> SweepReport:
        report = SweepReport()
        keys = [self.keys.prefix]
        async for job_id in self.redis.zscan_iter(self.keys.unfinished):
            job_id = job_id[0] if isinstance(job_id, tuple) else job_id
            outcome = await self._sweep(keys=keys, args=[job_id, repr(now), _WORKER_LOST])
            if outcome == "requeued":
                report.requeued.append(job_id)
            elif outcome == "failed":
                report.failed.append(job_id)
        return report

    async def ping(self) -> None:
        await self.redis.ping()
