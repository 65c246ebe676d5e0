"""Job endpoints: read, list, download, delete, cancel, retry (submit is routes/submit.py)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import FileResponse
from starlette.convertors import Convertor, register_url_convertor

from brokers.contract import CancelOutcome, DeleteOutcome, JobQuery, JobRecord, RetryOutcome
from schemas.jobs import (
    Job,
    JobKind,
    JobPage,
    JobResult,
    JobStatus,
    ResultFile,
    RetryCount,
    RetryFilter,
)
from service.deps import BackendDep, TenantDep
from service.downloads import NOT_MODIFIED, file_download
from service.errors import (
    BackendUnavailableError,
    FieldError,
    InvalidJobIdError,
    JobAlreadyFinishedError,
    JobExpiredError,
    JobFailedError,
    JobNotFinishedError,
    JobNotFoundError,
    JobNotRetryableError,
    ResultFileNotFoundError,
    ResultGoneError,
    ResultNotReadyError,
    documented,
)
from service.json_body import JsonBodyRoute
from service.live import wait_for_change
from service.presenters import present_job
from tasks.kinds import DEFAULT_MAX_ATTEMPTS, find_kind

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JsonBodyRoute)

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
JOB_ID_RULE = "32 lowercase hexadecimal characters"
MAX_WAIT_SECONDS = 60
"""Longest long-poll: shorter than the idle timeouts of common proxies and clients."""


class JobIdConvertor(Convertor[str]):
    """Only a 32-hex id routes to a job, so GET /v1/jobs/qr is a 405, not a bad job id."""

    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("job_id", JobIdConvertor())
BINARY = {"type": "string", "format": "binary"}
JobId = Annotated[
    str,
    Path(
        description=(
            f"The job's id: {JOB_ID_RULE}. Any other value names no job: 404 with problem "
            "type invalid-job-id."
        ),
        pattern=JOB_ID_PATTERN,
    ),
]
RESULT_MEDIA_TYPES = {
    "image/png": {"schema": BINARY},
    "image/svg+xml": {"schema": {"type": "string"}},
    "application/pdf": {"schema": BINARY},
}
_JOB_PATH = re.compile(
    re.escape(router.prefix) + r"/(?P<job_id>[^/]+)(?:/result|/events|/files/[^/]+)?"
)


def explain_unrouted(path: str) -> InvalidJobIdError | None:
    """Why a job path matched no route: its id is not one (ids never route otherwise)."""
    found = _JOB_PATH.fullmatch(path)
    if found is None or re.fullmatch(JOB_ID_PATTERN, found["job_id"]):
        return None
    return InvalidJobIdError(
        f"{found['job_id']!r} is not a job id; job ids are {JOB_ID_RULE}",
        errors=[FieldError(field="job_id", message=f"must be {JOB_ID_RULE}")],
    )


async def _find(backend: BackendDep, tenant: str, job_id: str) -> JobRecord:
    """A job the tenant may see; 410 once expired, while the store still keeps its record."""
    record = await backend.store.get(job_id)
    if record is None or record.tenant != tenant:
        raise JobNotFoundError(f"no job {job_id}")
    if record.is_expired(time.time()):
        raise JobExpiredError(f"job {job_id} has expired")
    return record


find_job = _find
"""For the other job routes (service.routes.events)."""


@router.get(
    "",
    operation_id="list_jobs",
    response_model=JobPage,
    responses=documented(BackendUnavailableError, validation=True),
)
async def list_jobs(
    backend: BackendDep,
    tenant: TenantDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
    kind: Annotated[JobKind | None, Query(description="Only jobs of this kind.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=JOB_ID_PATTERN, description="next_cursor from the previous page."),
    ] = None,
) -> JobPage:
    """List the caller's jobs, newest first."""
    query = JobQuery(
        tenant=tenant,
        status=status,
        kind=kind,
        limit=limit,
        cursor=cursor,
    )
    records, next_cursor = await backend.store.list(query)
    now = time.time()
    items = [present_job(record) for record in records if not record.is_expired(now)]
    return JobPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{job_id:job_id}",
    operation_id="get_job",
    response_model=Job,
    responses=documented(
        JobNotFoundError,
        InvalidJobIdError,
        JobExpiredError,
        BackendUnavailableError,
        validation=True,
    ),
)
async def get_job(
    job_id: JobId,
    backend: BackendDep,
    tenant: TenantDep,
    wait: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_WAIT_SECONDS,
            description="Long-poll: answer once the job changes (its `version` passes "
            "`since`), or after this many seconds with its current state.",
        ),
    ] = None,
    since: Annotated[
        int | None,
        Query(
            ge=0,
            description="With `wait`: the `version` the client has. A job already past it "
            "is answered at once. Default: the job's version when the request arrives.",
        ),
    ] = None,
) -> Job:
    """Read a job: its status, progress, error and result; with `wait`, once it changes."""
    record = await _find(backend, tenant, job_id)
    if wait is not None:
        seen = record.version if since is None else since
        changed = await wait_for_change(backend, job_id, seen, wait)
        if changed is None:
            raise JobNotFoundError(f"no job {job_id}")
        record = changed
    return present_job(record)


RESULT_ERRORS = documented(
    JobNotFoundError,
    InvalidJobIdError,
    ResultNotReadyError,
    JobFailedError,
    ResultGoneError,
    BackendUnavailableError,
)


@router.get(
    "/{job_id:job_id}/result",
    operation_id="get_job_result",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The result file: PNG, SVG or PDF, as the job asked.",
            "content": RESULT_MEDIA_TYPES,
        },
        **NOT_MODIFIED,
        **RESULT_ERRORS,
    },
)
async def get_job_result(
    job_id: JobId, request: Request, backend: BackendDep, tenant: TenantDep
) -> Response:
    """Download a finished job's (first) result file."""
    result = await _finished_result(backend, tenant, job_id)
    if not result.files:
        raise ResultGoneError(f"job {job_id} has no result file")
    return _download(request, backend, job_id, result.files[0])


@router.get(
    "/{job_id:job_id}/files/{file_id}",
    operation_id="get_job_file",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The result file, with the content type its job result names.",
            "content": {"application/octet-stream": {"schema": BINARY}},
        },
        **NOT_MODIFIED,
        **documented(
            JobNotFoundError,
            InvalidJobIdError,
            ResultFileNotFoundError,
            ResultNotReadyError,
            JobFailedError,
            ResultGoneError,
            BackendUnavailableError,
        ),
    },
)
async def get_job_file(
    job_id: JobId,
    file_id: Annotated[str, Path(description="A result file's `id` from the job's result.")],
    request: Request,
    backend: BackendDep,
    tenant: TenantDep,
) -> Response:
    """Download any result file of a finished job: each file's `url` points here."""
    result = await _finished_result(backend, tenant, job_id)
    for file in result.files:
        if file.id == file_id:
            return _download(request, backend, job_id, file)
    raise ResultFileNotFoundError(f"job {job_id} has no result file {file_id!r}")


async def _finished_result(backend: BackendDep, tenant: str, job_id: str) -> JobResult:
    """The result of a job that succeeded; 404/409/410 problems otherwise."""
    record = await backend.store.get(job_id)
    if record is None or record.tenant != tenant:
        raise JobNotFoundError(f"no job {job_id}")
    if record.is_expired(time.time()) or record.files_purged:
        raise ResultGoneError(f"the result of job {job_id} has expired")
    if record.status is JobStatus.FAILED:
        raise JobFailedError(f"job {job_id} failed: {record.error.message if record.error else ''}")
    if record.status is not JobStatus.SUCCEEDED or record.result is None:
        raise ResultNotReadyError(f"job {job_id} is {record.status.value}")
    return record.result


def _download(request: Request, backend: BackendDep, job_id: str, file: ResultFile) -> Response:
    path = backend.files.path(job_id, file.id)
    if path is None:
        raise ResultGoneError(f"the result file {file.id!r} of job {job_id} is gone")
    return file_download(request, path, file.content_type, file.name, file.sha256)


@router.post(
    "/{job_id:job_id}/cancel",
    operation_id="cancel_job",
    response_model=Job,
    responses={
        202: {
            "model": Job,
            "description": "The job runs: it is stopped within a fraction of a second, or "
            "after a grace period inside a CPU step; one that finishes first keeps its result.",
        },
        **documented(
            InvalidJobIdError,
            JobNotFoundError,
            JobAlreadyFinishedError,
            JobExpiredError,
            BackendUnavailableError,
        ),
    },
)
async def cancel_job(
    job_id: JobId, backend: BackendDep, tenant: TenantDep, response: Response
) -> Job:
    """Cancel a job: one that has not started never runs (200); a running one is stopped
    (202), its CPU steps after a grace period. Cancelling a cancelled job is 200 again; a
    finished one, 409."""
    await _find(backend, tenant, job_id)
    outcome = await backend.store.cancel(job_id, time.time())
    if outcome is CancelOutcome.NOT_FOUND:
        raise JobNotFoundError(f"no job {job_id}")
    if outcome is CancelOutcome.FINISHED:
        raise JobAlreadyFinishedError(f"job {job_id} has already finished")
    if outcome is CancelOutcome.REQUESTED:
        response.status_code = status.HTTP_202_ACCEPTED
    record = await _find(backend, tenant, job_id)
    return present_job(record)


@router.post(
    "/{job_id:job_id}/retry",
    operation_id="retry_job",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=documented(
        InvalidJobIdError,
        JobNotFoundError,
        JobNotRetryableError,
        JobExpiredError,
        BackendUnavailableError,
    ),
)
async def retry_job(job_id: JobId, backend: BackendDep, tenant: TenantDep) -> Job:
    """Queue a failed or cancelled job again under its id; its attempts keep counting."""
    record = await _find(backend, tenant, job_id)
    outcome = await backend.store.retry(job_id, _retry_budget(record))
    if outcome is RetryOutcome.NOT_FOUND:
        raise JobNotFoundError(f"no job {job_id}")
    if outcome is RetryOutcome.NOT_RETRYABLE:
        raise JobNotRetryableError(f"job {job_id} is neither failed nor cancelled")
    backend.wake_workers()
    return present_job(await _find(backend, tenant, job_id))


@router.post(
    "/retry",
    operation_id="retry_jobs",
    response_model=RetryCount,
    responses=documented(BackendUnavailableError, validation=True),
)
async def retry_jobs(selection: RetryFilter, backend: BackendDep, tenant: TenantDep) -> RetryCount:
    """Queue again every failed (or cancelled) job that matches the filter."""
    query = JobQuery(
        tenant=tenant,
        status=JobStatus(selection.status.value),
        kind=selection.kind,
        limit=100,
    )
    count = 0
    now = time.time()
    while True:
        records, query.cursor = await backend.store.list(query)
        for record in records:
            # Compared as presented (microseconds), so a job's own created_at selects it.
            created = datetime.fromtimestamp(record.created_at, UTC)
            if record.is_expired(now) or (selection.since and created < selection.since):
                continue
            if await backend.store.retry(record.id, _retry_budget(record)) is RetryOutcome.RETRIED:
                count += 1
        if query.cursor is None:
            break
    if count:
        backend.wake_workers()
    return RetryCount(count=count)


def _retry_budget(record: JobRecord) -> int:
    """A retried job gets its kind's attempts again (the default, if its kind is gone)."""
    kind = find_kind(record.kind)
    return DEFAULT_MAX_ATTEMPTS if kind is None else kind.max_attempts


@router.delete(
    "/{job_id:job_id}",
    operation_id="delete_job",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=documented(
        JobNotFoundError,
        InvalidJobIdError,
        JobNotFinishedError,
        JobExpiredError,
        BackendUnavailableError,
    ),
)
async def delete_job(job_id: JobId, backend: BackendDep, tenant: TenantDep) -> Response:
    """Delete a finished job and its files."""
    await _find(backend, tenant, job_id)
    outcome = await backend.store.delete(job_id)
    if outcome is DeleteOutcome.NOT_FOUND:
        raise JobNotFoundError(f"no job {job_id}")
    if outcome is DeleteOutcome.NOT_FINISHED:
        raise JobNotFinishedError(f"job {job_id} has not finished; it cannot be deleted yet")
    backend.files.delete(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
