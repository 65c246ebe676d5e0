"""The job's live events: ``GET /v1/jobs/{job_id}/events`` as server-sent events.

Written on Starlette's StreamingResponse rather than sse-starlette: an event here is three
lines we format ourselves (service.live), keep-alives come from the same wait as the events
(no second task per stream), and StreamingResponse already cancels the stream when the
client goes away, which ends its watch.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from service.deps import BackendDep, TenantDep
from service.errors import (
    BackendUnavailableError,
    InvalidJobIdError,
    JobExpiredError,
    JobNotFoundError,
    documented,
)
from service.live import job_events
from service.routes.jobs import JobId, find_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

EVENT_STREAM = "text/event-stream"
EXAMPLE = (
    "retry: 1000\n\n"
    'id: 3\nevent: status\ndata: {"id": "…", "status": "running", "version": 3, …}\n\n'
    'id: 4\nevent: progress\ndata: {"id": "…", "status": "running", "progress": {"done": 5, '
    '"total": 10, "message": null, "percent": 50.0}, "version": 4, …}\n\n'
    ": keep-alive\n\n"
    'id: 6\nevent: status\ndata: {"id": "…", "status": "succeeded", "version": 6, …}\n\n'
)


@router.get(
    "/{job_id:job_id}/events",
    operation_id="stream_job_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events, one per change of the job: `event: status` "
            "when anything but the progress changed (and for the first event), `event: "
            "progress` when only the progress did; `id:` the job's `version`; `data:` the job "
            "as get_job gives it. The stream closes after the job's terminal state, at once "
            "for a finished job (after its final state, unless Last-Event-ID has it already). "
            "A comment line comes when nothing happened for a while. If the backend becomes "
            "unavailable the stream ends; reconnect with Last-Event-ID (EventSource does).",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": EXAMPLE}},
        },
        **documented(JobNotFoundError, InvalidJobIdError, JobExpiredError, BackendUnavailableError),
    },
)
async def stream_job_events(
    job_id: JobId,
    backend: BackendDep,
    tenant: TenantDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The id of the last event received: only later changes are sent. "
            "If the job changed since, its current state comes at once.",
        ),
    ] = None,
) -> StreamingResponse:
    """Follow a job as server-sent events until it finishes."""
    record = await find_job(backend, tenant, job_id)  # 404, 410 and 503 before the stream
    last_seen = _version(last_event_id)
    events = job_events(backend, record.id, last_seen, backend.settings.events_keepalive_seconds)
    return StreamingResponse(
        events,
        media_type=EVENT_STREAM,
        # no-transform and X-Accel-Buffering: proxies (nginx) must pass each event at once.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


def _version(last_event_id: str | None) -> int:
    """An event id is a version; anything else (a client's own, garbage) means none seen."""
    if last_event_id is None or not last_event_id.strip().isdigit():
        return 0
    return int(last_event_id.strip())
