"""The synchronous fast path: one small QR code, straight back as an image."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from schemas.qr import QrOptions
from service.errors import documented
from tasks.qr_render import render_qr

router = APIRouter(prefix="/v1", tags=["qr"])

MAX_SYNC_DATA_BYTES = 512


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
def render_qr_now(options: Annotated[QrOptions, Query()]) -> Response:
    """Render one small QR code now (data up to 512 bytes); use a job for anything bigger."""
    size = len(options.data.encode())
    if size > MAX_SYNC_DATA_BYTES:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "data"),
                    "msg": f"is {size} bytes; the synchronous path takes at most "
                    f"{MAX_SYNC_DATA_BYTES} (submit a job for more)",
                    "type": "too_long",
                }
            ]
        )
    rendered = render_qr(options)
    return Response(
        rendered.content,
        media_type=rendered.content_type,
        headers={
            "Content-Disposition": f'inline; filename="qr.{rendered.extension}"',
            "Cache-Control": "public, max-age=86400",
        },
    )
