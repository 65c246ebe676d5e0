"""Submit-time checks of the uploaded files a job names (a kind's ``inputs``), before the
job is stored: a job never starts only to find its input missing or of the wrong type."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from brokers.uploads import LocalUploadStore, Upload
from service.errors import FieldError, UnsupportedFileTypeError, located
from service.settings import Settings
from tasks.kinds import FileInput, Kind


async def check_inputs(
    kind: Kind[Any],
    request: BaseModel,
    settings: Settings,
    uploads: LocalUploadStore,
    tenant: str,
    starts_at: float | None = None,
) -> dict[str, Upload]:
    """The request's uploads by file id. Raises a 422 naming each field whose file is
    unknown, another tenant's, expired, empty, or due to expire before ``starts_at`` (a
    job submitted for later); then a 415 naming each file of a type the kind does not
    take; then whatever the kind's ``check_files`` finds (422)."""
    if kind.inputs is None:
        return {}
    wanted = list(kind.inputs(request))
    found = await asyncio.to_thread(_look_up, uploads, tenant, wanted)
    missing: list[dict[str, Any]] = []
    wrong_type: list[FieldError] = []
    for item in wanted:
        upload = found.get(item.file_id)
        if upload is None:
            missing.append(_invalid(item, "no such file: unknown, expired or not yours"))
        elif upload.size == 0:
            missing.append(_invalid(item, f"file {item.file_id} is empty"))
        elif starts_at is not None and upload.expires_at <= starts_at:
            when = datetime.fromtimestamp(upload.expires_at, UTC).isoformat()
            message = f"file {item.file_id} expires at {when}, before the job may start"
            missing.append(_invalid(item, message))
        elif upload.content_type not in item.accept:
            expected = ", ".join(sorted(item.accept))
            message = f"file {item.file_id} is {upload.content_type}; expected {expected}"
            wrong_type.append(FieldError(field=item.field, message=message))
    if missing:
        raise RequestValidationError(missing)
    if wrong_type:
        raise UnsupportedFileTypeError(
            "; ".join(f"{error.field}: {error.message}" for error in wrong_type),
            errors=wrong_type,
        )
    if kind.check_files is not None:
        try:
            await run_in_threadpool(kind.check_files, request, settings, found)
        except ValidationError as invalid:
            raise located(invalid, "body") from None
        except FileNotFoundError as error:
            gone = _deleted_meanwhile(wanted, found, error)
            if not gone:
                raise
            raise RequestValidationError(gone) from None
    return found


def _deleted_meanwhile(
    wanted: list[FileInput], found: dict[str, Upload], error: FileNotFoundError
) -> list[dict[str, Any]]:
    """The 422 entries of the inputs whose content ``check_files`` found gone: deleted or
    purged between the look-up and the look inside (the job would fail input_missing)."""
    missing = str(error.filename)
    return [
        _invalid(item, f"file {item.file_id} was deleted or expired")
        for item in wanted
        if item.file_id in found and str(found[item.file_id].path) == missing
    ]


def _look_up(uploads: LocalUploadStore, tenant: str, wanted: list[FileInput]) -> dict[str, Upload]:
    found = {}
    for item in wanted:
        upload = uploads.get(tenant, item.file_id)
        if upload is not None:
            found[item.file_id] = upload
    return found


def _invalid(item: FileInput, message: str) -> dict[str, Any]:
    """One error as FastAPI's own 422s carry it, so the problem names ``item.field``."""
    return {
        "type": "file_input",
        "loc": ("body", *item.field.split(".")),
        "msg": message,
        "input": item.file_id,
    }
