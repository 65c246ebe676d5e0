"""One submit operation per declared job kind: ``POST /v1/jobs/<kind>``, ``create_<kind>_job``.

Nothing here names a kind: each route is made from its declaration (tasks/kinds.py) when the
app is built, so a new kind gets its route, operation and request schema from its module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response, status
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from schemas.jobs import Job, JobOptions
from service.deps import BackendDep, TenantDep
from service.errors import (
    BackendUnavailableError,
    IdempotencyKeyReusedError,
    PayloadTooLargeError,
    ProblemError,
    UnsupportedFileTypeError,
    UnsupportedMediaTypeError,
    documented,
    located,
)
from service.inputs import check_inputs
from service.json_body import JsonBodyRoute
from service.presenters import present_job
from service.settings import Settings
from service.submission import submit
from service.webhooks.urls import check_callback_option
from tasks.kinds import Kind

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes the submit safe to repeat: the same key with the same body "
        "answers the job it first made (200) for as long as that job is kept; with another "
        "body, 409.",
    ),
]
OPTIONS_EXAMPLE = {"lane": "bulk", "delay_s": 30, "max_attempts": 5}
"""Added to a kind's first example to show the job options beside its own fields."""

Endpoint = Callable[..., Coroutine[Any, Any, Job]]


def kind_router(kinds: Iterable[Kind[Any]]) -> APIRouter:
    """The submit routes of ``kinds``, one each."""
    router = APIRouter(tags=["jobs"], route_class=JsonBodyRoute)
    for kind in kinds:
        errors: list[type[ProblemError]] = [IdempotencyKeyReusedError, PayloadTooLargeError]
        if kind.inputs is not None:
            # Both 415s in one entry: JsonBodyRoute's own would otherwise be replaced.
            errors += [UnsupportedMediaTypeError, UnsupportedFileTypeError]
        router.add_api_route(
            kind.path,
            _endpoint(kind),
            methods=["POST"],
            operation_id=kind.operation_id,
            name=kind.operation_id,
            description=kind.summary,
            status_code=status.HTTP_202_ACCEPTED,
            response_model=Job,
            responses={
                200: {"model": Job, "description": "The job an earlier submit with this key made."},
                **documented(*errors, BackendUnavailableError, validation=True),
            },
        )
    return router


def _endpoint(kind: Kind[Any]) -> Endpoint:
    async def create_job(
        body: BaseModel,
        backend: BackendDep,
        tenant: TenantDep,
        response: Response,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Job:
        request, options = kind.split(body)
        check_callback_option(options, allow_private=backend.settings.webhook_allow_private)
        await _check(kind, request, backend.settings)
        starts_at = _starts_at(options)
        await check_inputs(kind, request, backend.settings, backend.uploads, tenant, starts_at)
        accepted = await submit(
            backend,
            kind,
            tenant=tenant,
            request=kind.request_data(request),
            options=options,
            idempotency_key=idempotency_key,
        )
        job = present_job(accepted.job)
        response.headers["Location"] = job.links.self
        if not accepted.created:
            response.status_code = status.HTTP_200_OK
        return job

    # FastAPI reads the body's model from the signature; it is this kind's, known only now.
    create_job.__annotations__["body"] = Annotated[
        kind.body, Body(openapi_examples=_examples(kind))
    ]
    create_job.__name__ = create_job.__qualname__ = kind.operation_id
    return create_job


async def _check(kind: Kind[Any], request: BaseModel, settings: Settings) -> None:
    """The kind's submit check, in a worker thread (it may be CPU-bound, like the QR fit)."""
    if kind.check is None:
        return
    try:
        await run_in_threadpool(kind.check, request, settings)
    except ValidationError as invalid:
        raise located(invalid, "body") from None


def _starts_at(options: JobOptions) -> float | None:
    """When a job submitted for later may start (its inputs must outlive that)."""
    if options.run_at is not None:
        return options.run_at.timestamp()
    if options.delay_s:
        return time.time() + options.delay_s
    return None


def _examples(kind: Kind[Any]) -> dict[str, Any]:
    examples: list[dict[str, Any]] = kind.request.model_json_schema().get("examples", [])
    named = {
        f"example_{number}": {"summary": f"{kind.name} job, example {number}", "value": value}
        for number, value in enumerate(examples, start=1)
    }
    if examples:
        named["with_options"] = {
            "summary": f"{kind.name} job in the bulk lane, in 30 s, up to 5 runs",
            "value": {**examples[0], **OPTIONS_EXAMPLE},
        }
    return named
