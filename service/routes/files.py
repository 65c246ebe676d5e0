"""Uploaded files: ``POST /v1/files`` streams one to storage; read, download and delete it.

The upload bypasses the app's body limit (service/body_limit.py buffers a body to measure
it) and is read as a stream instead, straight into the store, its own limit enforced as the
bytes arrive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from brokers.lifecycle import is_out_of_space
from brokers.uploads import LocalUploadStore, Upload, UploadTooLargeError
from schemas.files import UPLOAD_PATH, FileInfo
from service.deps import BackendDep, TenantDep
from service.downloads import NOT_MODIFIED, file_download
from service.errors import (
    BackendUnavailableError,
    InsufficientStorageError,
    PayloadTooLargeError,
    UploadInterruptedError,
    UploadNotFoundError,
    documented,
)
from service.multipart import BodyTooLargeError, MalformedMultipartError, MultipartStream
from service.presenters import file_path, present_upload

logger = logging.getLogger(__name__)

router = APIRouter(prefix=UPLOAD_PATH, tags=["files"])
MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""What the body may carry beside the file's bytes: boundaries, part headers, small fields."""
FILE_FIELD = "file"
FileId = Annotated[str, Path(description="The file's id, from its upload (32 hex characters).")]
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FILE_FIELD],
                "properties": {
                    FILE_FIELD: {
                        "type": "string",
                        "format": "binary",
                        "description": "The file. Its type is sniffed from its bytes.",
                    }
                },
            }
        }
    },
}


@router.post(
    "",
    operation_id="upload_file",
    status_code=status.HTTP_201_CREATED,
    response_model=FileInfo,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses=documented(
        UploadInterruptedError,
        PayloadTooLargeError,
        InsufficientStorageError,
        BackendUnavailableError,
        validation=True,
    ),
)
async def upload_file(
    request: Request, backend: BackendDep, tenant: TenantDep, response: Response
) -> FileInfo:
    """Upload a file (multipart field `file`) for jobs to use; it expires after a while."""
    settings = backend.settings
    limit = settings.upload_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD_BYTES:
        raise _too_large(limit)
    try:
        upload = await _receive(
            request, backend.uploads, tenant, limit, settings.upload_ttl_seconds
        )
    except (UploadTooLargeError, BodyTooLargeError):
        raise _too_large(limit) from None
    except MalformedMultipartError as malformed:
        raise _file_error(str(malformed)) from None
    except ClientDisconnect:
        logger.info("a client went away mid-upload; nothing was kept")
        raise UploadInterruptedError("the client disconnected; nothing was kept") from None
    except OSError as error:
        if not is_out_of_space(error):
            raise
        logger.warning("no space for an upload: %s", error)
        raise InsufficientStorageError("the server has no space left for this file") from None
    response.headers["Location"] = file_path(upload.id)
    return present_upload(upload)


async def _receive(
    request: Request, uploads: LocalUploadStore, tenant: str, limit: int, ttl: float
) -> Upload:
    stream = MultipartStream(
        request.headers.get("content-type", ""),
        request.stream(),
        max_body_bytes=limit + MULTIPART_OVERHEAD_BYTES,
    )
    part = await stream.find(FILE_FIELD)
    if part is None:
        raise MalformedMultipartError(f"the form has no {FILE_FIELD!r} part")
    # A part without a filename (curl -F 'file=<x.csv') is taken too, named "upload".
    name = part.filename or ""
    upload = await uploads.save(tenant, name, stream.data(), limit, ttl, part.content_type)
    try:
        await stream.finish()  # what follows the part must still be a well-formed body
    except BaseException:
        uploads.delete(tenant, upload.id)  # no await: it runs on a cancel too
        raise
    return upload


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the file may be at most {limit} bytes")


def _file_error(message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "missing", "loc": ("body", FILE_FIELD), "msg": message, "input": None}]
    )


async def _find(backend: BackendDep, tenant: str, file_id: str) -> Upload:
    upload = await asyncio.to_thread(backend.uploads.get, tenant, file_id)
    if upload is None:
        raise UploadNotFoundError(f"no file {file_id}: unknown, expired or deleted")
    return upload


@router.get(
    "/{file_id}",
    operation_id="get_file",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file's bytes, with the sniffed type as Content-Type.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **NOT_MODIFIED,
        **documented(UploadNotFoundError, BackendUnavailableError),
    },
)
async def get_file(
    file_id: FileId, request: Request, backend: BackendDep, tenant: TenantDep
) -> Response:
    """Download an uploaded file (ETag and If-None-Match as for job results)."""
    upload = await _find(backend, tenant, file_id)
    return file_download(request, upload.path, upload.content_type, upload.name, upload.sha256)


@router.get(
    "/{file_id}/info",
    operation_id="get_file_info",
    response_model=FileInfo,
    responses=documented(UploadNotFoundError, BackendUnavailableError),
)
async def get_file_info(file_id: FileId, backend: BackendDep, tenant: TenantDep) -> FileInfo:
    """Read an uploaded file's metadata."""
    return present_upload(await _find(backend, tenant, file_id))


@router.delete(
    "/{file_id}",
    operation_id="delete_file",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=documented(UploadNotFoundError, BackendUnavailableError),
)
async def delete_file(file_id: FileId, backend: BackendDep, tenant: TenantDep) -> Response:
    """Delete an uploaded file; jobs that still need it fail as input_missing."""
    if not await asyncio.to_thread(backend.uploads.delete, tenant, file_id):
        raise UploadNotFoundError(f"no file {file_id}: unknown, expired or deleted")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
