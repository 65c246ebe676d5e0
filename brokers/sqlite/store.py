"""The job store on the embedded database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from brokers.contract import (
    EXPIRED,
    WORKER_LOST,
    Admission,
    Admitted,
    CancelOutcome,
    DeleteOutcome,
    JobQuery,
    JobRecord,
    PurgeReport,
    RetryOutcome,
    SweepReport,
)
from brokers.sqlite.database import Database
from brokers.sqlite.group_commit import GroupCommit
from brokers.sqlite.webhooks import webhook_of
from schemas.jobs import AttemptError, JobError, JobResult, JobStatus, Progress

_COLUMNS = (
    "id, tenant, kind, status, request, progress, attempts, max_attempts, created_at, "
    "started_at, finished_at, expires_at, error, result, files_purged, cancel_requested, "
    "lane, due_at, timeout_s, callback_url, attempt_errors, next_attempt_at"
)
_APPEND_ERROR = (
    "json_insert(coalesce(attempt_errors, '[]'), '$[#]', "
    "json_set(json(?), '$.attempt', attempts, '$.at', ?, '$.retry_at', ?))"
)
"""attempt_errors with one more (params: the error's JSON, when, the next attempt's due
time or None); ``attempts`` is the failed attempt's number, as the row holds it."""
_SELECTED = f"{_COLUMNS}, version"
"""What reads select: the version is the store's own (a trigger bumps it), never inserted."""
_STARTABLE = ("queued", "retrying", "running")
_IDS_PER_QUERY = 500
"""Bound parameters per query: well below SQLite's limit (32,766 since 3.32, 999 before)."""
_TERMINAL = ("succeeded", "failed", "cancelled")


def _dump(model: JobError | JobResult | Progress | None) -> str | None:
    return None if model is None else model.model_dump_json()


def _record(row: sqlite3.Row | tuple[Any, ...]) -> JobRecord:
    (job_id, tenant, kind, status, request, progress, attempts, max_attempts, created_at,
     started_at, finished_at, expires_at, error, result, files_purged,
     cancel_requested, lane, due_at, timeout_s, callback_url, attempt_errors,
     next_attempt_at, version) = row  # fmt: skip
    return JobRecord(
        id=job_id,
        tenant=tenant,
        kind=kind,
        status=JobStatus(status),
        request=json.loads(request),
        progress=None if progress is None else Progress.model_validate_json(progress),
        attempts=attempts,
        max_attempts=max_attempts,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        expires_at=expires_at,
        error=None if error is None else JobError.model_validate_json(error),
        result=None if result is None else JobResult.model_validate_json(result),
        files_purged=bool(files_purged),
        cancel_requested=bool(cancel_requested),
        lane=lane,
        due_at=due_at,
        timeout_s=timeout_s,
        callback_url=callback_url,
        attempt_errors=[AttemptError.model_validate(item) for item in json.loads(attempt_errors)]
        if attempt_errors
        else [],
        next_attempt_at=next_attempt_at,
        version=version,
    )


def _errors_json(errors: list[AttemptError]) -> str | None:
    if not errors:
        return None
    return json.dumps([error.model_dump(mode="json") for error in errors])


def versions_of(conn: sqlite3.Connection, job_ids: list[str]) -> dict[str, int]:
    """The version of each job that exists (brokers.sqlite.events asks this at each commit)."""
    found: dict[str, int] = {}
    for start in range(0, len(job_ids), _IDS_PER_QUERY):
        chunk = job_ids[start : start + _IDS_PER_QUERY]
        rows = conn.execute(
            f"SELECT id, version FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk
        )
        found.update((job_id, version) for job_id, version in rows)
    return found


def read_job(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
    row = conn.execute(f"SELECT {_SELECTED} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    record = _record(row)
    if record.callback_url is not None:
        record.webhook = webhook_of(conn, record.id, record.callback_url)
    return record


class SqliteJobStore:
    """Implements :class:`brokers.contract.JobStore` with one table and three indexes."""

    def __init__(self, database: Database, group: GroupCommit | None = None) -> None:
        self.database = database
        self.group = group or GroupCommit(database)

    async def create(self, job: JobRecord) -> None:
        with self.database.transaction() as conn:
            self.insert(conn, job)

    @staticmethod
    def insert(conn: sqlite3.Connection, job: JobRecord) -> None:
        conn.execute(
            f"INSERT INTO jobs ({_COLUMNS}, message) VALUES ({','.join('?' * 23)})",
            (
                job.id, job.tenant, job.kind, job.status.value, json.dumps(job.request),
                _dump(job.progress), job.attempts, job.max_attempts, job.created_at,
                job.started_at, job.finished_at, job.expires_at, _dump(job.error),
                _dump(job.result), int(job.files_purged), int(job.cancel_requested), job.lane,
                job.due_at, job.timeout_s, job.callback_url, _errors_json(job.attempt_errors),
                job.next_attempt_at, job.message,
            ),
        )  # fmt: skip

    async def get(self, job_id: str) -> JobRecord | None:
        return read_job(self.database.connection, job_id)

    async def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        clauses = ["tenant = ?"]
        params: list[Any] = [query.tenant]
        if query.status is not None:
            clauses.append("status = ?")
            params.append(query.status.value)
        if query.kind is not None:
            clauses.append("kind = ?")
            params.append(query.kind)
        if query.cursor is not None:
            clauses.append("id < ?")
            params.append(query.cursor)
        params.append(query.limit + 1)
        rows = self.database.connection.execute(
            f"SELECT {_SELECTED} FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
            params,
        ).fetchall()
        records = [self._with_webhook(_record(row)) for row in rows[: query.limit]]
        next_cursor = records[-1].id if len(rows) > query.limit else None
        return records, next_cursor

    def _with_webhook(self, record: JobRecord) -> JobRecord:
        if record.callback_url is not None:
            record.webhook = webhook_of(self.database.connection, record.id, record.callback_url)
        return record

    async def begin_attempt(self, job_id: str, now: float, token: int = 0) -> Admitted:
        with self.database.transaction() as conn:
            return self.admit_in(conn, job_id, now, token)

    @staticmethod
    def admit_in(conn: sqlite3.Connection, job_id: str, now: float, token: int = 0) -> Admitted:
        """``token`` is the delivered queue row's: a row whose token is not the job's current
        one is a stale copy (a retry or the sweeper queued a newer message) and is dropped
        without touching the job, so it can neither start the job early nor run it twice."""
        started = conn.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, fence = fence + 1, "
            "started_at = ?, next_attempt_at = NULL WHERE id = ? AND status IN (?, ?, ?) "
            "AND attempts < max_attempts AND expires_at > ? AND cancel_requested = 0 "
            "AND message_token = ? RETURNING fence",
            (now, job_id, *_STARTABLE, now, token),
        ).fetchone()
        if started is not None:
            return Admitted(Admission.RUN, int(started[0]))
        row = conn.execute(
            "SELECT status, expires_at, cancel_requested, message_token FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return Admitted(Admission.NOT_A_JOB)
        status, expires_at, cancel_requested, current = row
        if current != token:
            return Admitted(Admission.DROP)
        if status in _STARTABLE and cancel_requested:
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, next_attempt_at = NULL "
                "WHERE id = ?",
                (now, job_id),
            )
        elif status in _STARTABLE:
            why = EXPIRED if expires_at <= now else WORKER_LOST
            conn.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?, error = ?, "
                "next_attempt_at = NULL WHERE id = ?",
                (now, why.model_dump_json(), job_id),
            )
        return Admitted(Admission.DROP)

    async def holds(self, job_id: str, fence: int) -> bool:
        row = self.database.connection.execute(
            "SELECT 1 FROM jobs WHERE id = ? AND status = 'running' AND fence = ? "
            "AND cancel_requested = 0",
            (job_id, fence),
        ).fetchone()
        return row is not None

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

        def record(conn: sqlite3.Connection) -> bool:
            errors = "attempt_errors" if error is None else _APPEND_ERROR
            row = conn.execute(
                f"UPDATE jobs SET status = ?, finished_at = ?, result = ?, error = ?, "
                f"next_attempt_at = NULL, attempt_errors = {errors} "
                "WHERE id = ? AND status = 'running' AND fence = ? RETURNING id",
                (
                    status.value, now, _dump(result), _dump(error),
                    *(() if error is None else (_dump(error), now, None)),
                    job_id, fence,
                ),
            ).fetchone()  # fmt: skip
            if row is None:  # recorded already by this attempt?
                row = conn.execute(
                    "SELECT 1 FROM jobs WHERE id = ? AND status = ? AND fence = ?",
                    (job_id, status.value, fence),
                ).fetchone()
            return row is not None

        return await self.group.write(record)

    async def schedule_retry(
        self, job_id: str, fence: int, now: float, error: JobError, due_at: float
    ) -> JobStatus | None:
        def record(conn: sqlite3.Connection) -> JobStatus | None:
            return self.schedule_retry_in(conn, job_id, fence, now, error, due_at)

        return await self.group.write(record)

    @staticmethod
    def schedule_retry_in(
        conn: sqlite3.Connection,
        job_id: str,
        fence: int,
        now: float,
        error: JobError,
        due_at: float,
    ) -> JobStatus | None:
        """The job's status change and its next queue row (visible at ``due_at``, with a new
        token) in the caller's transaction; see JobStore.schedule_retry."""
        described = error.model_dump_json()
        row = conn.execute(
            f"UPDATE jobs SET status = 'retrying', error = ?, next_attempt_at = ?, "
            f"message_token = message_token + 1, attempt_errors = {_APPEND_ERROR} "
            "WHERE id = ? AND status = 'running' AND fence = ? AND cancel_requested = 0 "
            "AND attempts < max_attempts AND message IS NOT NULL "
            "RETURNING message, lane, message_token",
            (described, due_at, described, now, due_at, job_id, fence),
        ).fetchone()
        if row is not None:
            conn.execute(
                "INSERT INTO queue (task_id, lane, payload, visible_at, token) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_id, row[1], row[0], due_at, row[2]),
            )
            return JobStatus.RETRYING
        held = conn.execute(
            "SELECT status, cancel_requested FROM jobs WHERE id = ? AND fence = ?",
            (job_id, fence),
        ).fetchone()
        if held is None:
            return None
        if held[0] == JobStatus.RETRYING.value:
            return JobStatus.RETRYING  # recorded already by this attempt
        if held[0] != JobStatus.RUNNING.value:
            return None
        # Running still, but it may not run again: it was cancelled, or has no attempt or
        # message left.
        final = JobStatus.CANCELLED if held[1] else JobStatus.FAILED
        conn.execute(
            f"UPDATE jobs SET status = ?, finished_at = ?, error = ?, next_attempt_at = NULL, "
            f"attempt_errors = {_APPEND_ERROR} WHERE id = ?",
            (
                final.value, now, None if held[1] else described, described, now, None,
                job_id,
            ),
        )  # fmt: skip
        return final

    async def release(self, job_id: str, fence: int) -> bool:
        with self.database.transaction() as conn:
            return self.release_in(conn, job_id, fence)

    @staticmethod
    def release_in(conn: sqlite3.Connection, job_id: str, fence: int) -> bool:
        """A released attempt did not really get to run: give it back (the fence stays)."""
        row = conn.execute(
            "UPDATE jobs SET status = 'queued', attempts = max(attempts - 1, 0) "
            "WHERE id = ? AND status = 'running' AND fence = ? RETURNING id",
            (job_id, fence),
        ).fetchone()
        return row is not None

    async def fail_undeliverable(self, job_id: str, now: float, error: JobError) -> bool:
        with self.database.transaction() as conn:
            return self.fail_undeliverable_in(conn, job_id, now, error)

    @staticmethod
    def fail_undeliverable_in(
        conn: sqlite3.Connection, job_id: str, now: float, error: JobError
    ) -> bool:
        row = conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?, error = ?, next_attempt_at = NULL "
            "WHERE id = ? AND status IN (?, ?, ?) RETURNING id",
            (now, error.model_dump_json(), job_id, *_STARTABLE),
        ).fetchone()
        return row is not None

    async def cancel(self, job_id: str, now: float) -> CancelOutcome:
        with self.database.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return CancelOutcome.NOT_FOUND
            status = JobStatus(row[0])
            if status is JobStatus.CANCELLED:
                return CancelOutcome.CANCELLED
            if status.is_terminal:
                return CancelOutcome.FINISHED
            if status is JobStatus.RUNNING:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                return CancelOutcome.REQUESTED
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, next_attempt_at = NULL "
                "WHERE id = ?",
                (now, job_id),
            )
            return CancelOutcome.CANCELLED

    async def cancels_requested(self, job_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        connection = self.database.connection
        for start in range(0, len(job_ids), _IDS_PER_QUERY):
            chunk = job_ids[start : start + _IDS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            rows = connection.execute(
                f"SELECT id FROM jobs WHERE cancel_requested = 1 AND id IN ({marks})", chunk
            ).fetchall()
            found.update(row[0] for row in rows)
        return found

    async def retry(self, job_id: str, budget: int) -> RetryOutcome:
        with self.database.transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'queued', error = NULL, finished_at = NULL, "
                "cancel_requested = 0, progress = NULL, max_attempts = attempts + ?, "
                "next_attempt_at = NULL, message_token = message_token + 1 "
                "WHERE id = ? AND status IN ('failed', 'cancelled') AND message IS NOT NULL "
                "RETURNING message, lane, message_token",
                (budget, job_id),
            ).fetchone()
            if row is None:
                found = conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return RetryOutcome.NOT_FOUND if found is None else RetryOutcome.NOT_RETRYABLE
            # Always a new message under a new token: an older row still in the queue (a
            # job cancelled while queued; a worker's finished row not yet acked) is a stale
            # copy that admission drops, so the job runs once and is never left without one.
            conn.execute(
                "INSERT INTO queue (task_id, lane, payload, visible_at, token) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_id, row[1], row[0], 0, row[2]),
            )
        return RetryOutcome.RETRIED

    async def withdraw(self, job_id: str, now: float, error: JobError) -> bool:
        return await self.fail_undeliverable(job_id, now, error)

    async def set_progress(self, job_id: str, fence: int, progress: Progress) -> bool:
        def record(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running' AND fence = ? "
                "AND cancel_requested = 0 RETURNING id",
                (progress.model_dump_json(), job_id, fence),
            ).fetchone()
            return row is not None

        return await self.group.write(record)

    async def delete(self, job_id: str) -> DeleteOutcome:
        with self.database.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return DeleteOutcome.NOT_FOUND
            if not JobStatus(row[0]).is_terminal:
                return DeleteOutcome.NOT_FINISHED
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            conn.execute("DELETE FROM results WHERE task_id = ?", (job_id,))
            conn.execute("DELETE FROM idempotency_keys WHERE job_id = ?", (job_id,))
        return DeleteOutcome.DELETED

    async def purge_expired(self, now: float, tombstone_seconds: float) -> PurgeReport:
        report = PurgeReport()
        with self.database.transaction() as conn:
            rows = conn.execute(
                "UPDATE jobs SET files_purged = 1, result = NULL WHERE expires_at <= ? "
                "AND files_purged = 0 AND status IN (?, ?, ?) RETURNING id",
                (now, *_TERMINAL),
            ).fetchall()
            report.files_of = [row[0] for row in rows]
            report.rows_deleted = conn.execute(
                "DELETE FROM jobs WHERE expires_at <= ? AND status IN (?, ?, ?)",
                (now - tombstone_seconds, *_TERMINAL),
            ).rowcount
            conn.execute("DELETE FROM results WHERE expires_at <= ?", (now,))
            conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
        return report

    async def sweep(self, now: float) -> SweepReport:
        report = SweepReport()
        with self.database.transaction() as conn:
            # The queue holds only unfinished work, so reading its task ids is cheaper than
            # an index on it that every submit and ack would pay for.
            # Only a row with the job's current token runs it; older ones are stale copies.
            queued = set(conn.execute("SELECT task_id, token FROM queue"))
            unfinished = conn.execute(
                "SELECT id, attempts, max_attempts, message, cancel_requested, lane, "
                "message_token FROM jobs WHERE status IN (?, ?, ?)",
                _STARTABLE,
            ).fetchall()
            orphans = [row for row in unfinished if (row[0], row[6]) not in queued]
            for job_id, attempts, max_attempts, message, cancel_requested, lane, _ in orphans:
                if cancel_requested:
                    conn.execute(
                        "UPDATE jobs SET status = 'cancelled', finished_at = ?, "
                        "next_attempt_at = NULL WHERE id = ?",
                        (now, job_id),
                    )
                    report.failed.append(job_id)
                    continue
                if message is None or attempts >= max_attempts:
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', finished_at = ?, error = ?, "
                        "next_attempt_at = NULL WHERE id = ?",
                        (now, WORKER_LOST.model_dump_json(), job_id),
                    )
                    report.failed.append(job_id)
                    continue
                token = conn.execute(
                    "UPDATE jobs SET status = 'queued', message_token = message_token + 1 "
                    "WHERE id = ? RETURNING message_token",
                    (job_id,),
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO queue (task_id, lane, payload, visible_at, token) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (job_id, lane, message, now, token),
                )
                report.requeued.append(job_id)
        return report

    async def ping(self) -> None:
        self.database.connection.execute("SELECT 1").fetchone()
