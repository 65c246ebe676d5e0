"""RFC 9457 problem details: one error base, a subclass per case, one renderer."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import JSONResponse

PROBLEM_TYPE_PREFIX = "urn:offload:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the input at fault, e.g. 'data' or 'scale'.")
    message: str


class Problem(BaseModel):
    type: str = Field(description="Stable identifier of the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="For validation problems: each field at fault."
    )
    job_id: str | None = Field(
        default=None,
        description="For a submit whose outcome is unknown (503): the id the job has if it "
        "was stored. Such a job is withdrawn as soon as the backend answers: it fails as "
        "submit_unconfirmed, even if a worker had started it, and its outcome is not kept.",
    )


class ProblemError(Exception):
    status = 500
    name = "internal-error"
    title = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors

    def problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=PROBLEM_TYPE_PREFIX + self.name,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )


class JobNotFoundError(ProblemError):
    status = 404
    name = "job-not-found"
    title = "No such job"


class InvalidJobIdError(ProblemError):
    status = 404
    name = "invalid-job-id"
    title = "Not a job id"


class JobExpiredError(ProblemError):
    status = 410
    name = "job-expired"
    title = "The job has expired"


class ResultNotReadyError(ProblemError):
    status = 409
    name = "result-not-ready"
    title = "The job has not finished"


class JobNotFinishedError(ProblemError):
    status = 409
    name = "job-not-finished"
    title = "The job has not finished"


class JobAlreadyFinishedError(ProblemError):
    status = 409
    name = "job-finished"
    title = "The job has already succeeded or failed"


class JobNotRetryableError(ProblemError):
    status = 409
    name = "job-not-retryable"
    title = "Only a failed or cancelled job can be retried"


class JobFailedError(ProblemError):
    status = 409
    name = "job-failed"
    title = "The job failed; it has no result"


class ResultFileNotFoundError(ProblemError):
    status = 404
    name = "result-file-not-found"
    title = "The job's result has no such file"


class ResultGoneError(ProblemError):
    status = 410
    name = "result-expired"
    title = "The result has expired"


class PayloadTooLargeError(ProblemError):
    status = 413
    name = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaTypeError(ProblemError):
    status = 415
    name = "unsupported-media-type"
    title = "The body must be JSON"


class UploadNotFoundError(ProblemError):
    status = 404
    name = "file-not-found"
    title = "No such file"


class UploadInterruptedError(ProblemError):
    status = 400
    name = "upload-interrupted"
    title = "The upload stopped before the body ended"


class UnsupportedFileTypeError(ProblemError):
    status = 415
    name = "unsupported-file-type"
    title = "An uploaded file is not of a type this job takes"


class InsufficientStorageError(ProblemError):
    status = 507
    name = "insufficient-storage"
    title = "No space left to store the file"

    def __init__(self, detail: str | None = None, retry_after: int = 60) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class BackendUnavailableError(ProblemError):
    status = 503
    name = "backend-unavailable"
    title = "The job backend is unavailable"

    def __init__(self, detail: str | None = None, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class IdempotencyKeyReusedError(ProblemError):
    status = 409
    name = "idempotency-key-reused"
    title = "The Idempotency-Key was used with another request"


class SubmitUnconfirmedError(BackendUnavailableError):
    name = "submit-unconfirmed"
    title = "The job backend did not confirm the job"

    def __init__(self, job_id: str, detail: str) -> None:
        super().__init__(detail)
        self.job_id = job_id

    def problem(self, instance: str | None = None) -> Problem:
        return super().problem(instance).model_copy(update={"job_id": self.job_id})


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def validation_problem(errors: list[FieldError], instance: str | None = None) -> Problem:
    return Problem(
        type=PROBLEM_TYPE_PREFIX + "validation-error",
        title="The request is not valid",
        status=422,
        detail="; ".join(f"{e.field}: {e.message}" for e in errors),
        instance=instance,
        errors=errors,
    )


def located(invalid: ValidationError, source: str) -> RequestValidationError:
    """A check's ValidationError as the 422 FastAPI gives: each field under ``source``
    ("body" or "query"), so the problem names it as parsing would have."""
    return RequestValidationError(
        [{**error, "loc": (source, *error["loc"])} for error in invalid.errors()]
    )


def documented(*errors: type[ProblemError], validation: bool = False) -> dict[int | str, Any]:
    """The ``responses=`` of a route: each problem it can answer, in problem+json."""
    responses: dict[int | str, Any] = {}
    statuses = sorted({error.status for error in errors} | ({422} if validation else set()))
    for status in statuses:
        kinds = [f"{e.title} ({e.name})" for e in errors if e.status == status]
        responses[status] = {
            "model": Problem,
            "description": " / ".join(kinds or ["The request is not valid (validation-error)"]),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return responses


_GENERIC_422_REF = "#/components/schemas/HTTPValidationError"


def without_generic_validation_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop the 422 that FastAPI documents on every route with parameters.

    It describes FastAPI's own error body, which this API never sends: our 422s are problem+json
    and each route that can answer one declares it (``documented(validation=True)``). Left in,
    it promises a 422 on routes whose parameters cannot fail validation.
    """
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            generic = responses.get("422", {}).get("content", {}).get("application/json", {})
            if generic.get("schema", {}).get("$ref") == _GENERIC_422_REF:
                del responses["422"]
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return spec
