"""The synchronous fast path: one small QR code, straight back as an image."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from schemas.qr import COLOUR_PATTERN, ErrorCorrection, QrFormat, QrOptions
from service.errors import documented
from tasks.qr_render import render_qr

router = APIRouter(prefix="/v1", tags=["qr"])

MAX_SYNC_DATA_BYTES = 512
_FIELDS = QrOptions.model_fields


def _described(name: str, **constraints: Any) -> Any:
    return Query(description=_FIELDS[name].description, **constraints)


@router.get(
    "/qr",
    operation_id="render_qr",
    response_class=Response,
    responses={
        200: {
            "description": "The image: PNG, SVG or PDF as asked.",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/svg+xml": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **documented(validation=True),
    },
)
def render_qr_now(
    data: Annotated[str, _described("data", min_length=1)],
    format: Annotated[QrFormat, _described("format")] = QrFormat.png,
    error_correction: Annotated[ErrorCorrection, _described("error_correction")] = (
        ErrorCorrection.M
    ),
    scale: Annotated[int, _described("scale", ge=1, le=50)] = 10,
    border: Annotated[int, _described("border", ge=0, le=20)] = 4,
    dark: Annotated[str, _described("dark", pattern=COLOUR_PATTERN)] = "#000000",
    light: Annotated[str, _described("light", pattern=COLOUR_PATTERN)] = "#FFFFFF",
) -> Response:
    """Render one small QR code now (data up to 512 bytes); submit a job for anything bigger."""
    size = len(data.encode())
    if size > MAX_SYNC_DATA_BYTES:
        raise _query_error(
            "data",
            f"is {size} bytes; the synchronous path takes at most {MAX_SYNC_DATA_BYTES} "
            "(submit a job for more)",
        )
    try:
        options = QrOptions(
            data=data,
            format=format,
            error_correction=error_correction,
            scale=scale,
            border=border,
            dark=dark,
            light=light,
        )
    except ValidationError as invalid:
        first = invalid.errors()[0]
        raise _query_error(str(first["loc"][-1]), first["msg"]) from None
    rendered = render_qr(options)
    return Response(
        rendered.content,
        media_type=rendered.content_type,
        headers={
            "Content-Disposition": f'inline; filename="qr.{rendered.extension}"',
            "Cache-Control": "public, max-age=86400",
        },
    )


def _query_error(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )
