"""Turns stored jobs into the API's ``Job`` schema."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from brokers.contract import JobRecord
from brokers.uploads import Upload
from schemas.files import FileInfo
from schemas.jobs import Job, JobLinks, JobProgress, Lane


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def job_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def present_job(record: JobRecord) -> Job:
    result = record.result.model_copy(deep=True) if record.result else None
    if result is not None:
        for file in result.files:
            file.url = f"{job_path(record.id)}/files/{quote(file.id, safe='')}"
    progress = record.progress
    return Job(
        id=record.id,
        tenant=record.tenant,
        kind=record.kind,
        status=record.status,
        progress=None if progress is None else JobProgress.of(progress),
        attempts=record.attempts,
        max_attempts=record.max_attempts,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        started_at=_when(record.started_at),
        finished_at=_when(record.finished_at),
        expires_at=datetime.fromtimestamp(record.expires_at, UTC),
        error=record.error,
        attempt_errors=record.attempt_errors,
        next_attempt_at=_when(record.next_attempt_at),
        cancel_requested=record.cancel_requested,
        result=result,
        lane=Lane(record.lane),
        run_at=_when(record.due_at),
        timeout_s=record.timeout_s,
        callback_url=record.callback_url,
        version=record.version,
        webhook=record.webhook,
        links=JobLinks(self=job_path(record.id), result=f"{job_path(record.id)}/result"),
    )


def file_path(file_id: str) -> str:
    return f"/v1/files/{file_id}"


def present_upload(upload: Upload) -> FileInfo:
    return FileInfo(
        id=upload.id,
        name=upload.name,
        content_type=upload.content_type,
        size=upload.size,
        sha256=upload.sha256,
        expires_at=datetime.fromtimestamp(upload.expires_at, UTC),
    )
