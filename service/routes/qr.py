"""The synchronous fast path: one small QR code, straight back as an image."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from schemas.qr import COLOUR_PATTERN, ErrorCorrection, QrFormat, QrOptions
from service.deps import BackendDep
from service.errors import ProblemError, documented, located
from service.settings import Settings
from tasks.qr_limits import check_qr_options
from tasks.qr_render import RenderedFile, render_qr

router = APIRouter(prefix="/v1", tags=["qr"])

MAX_SYNC_DATA_BYTES = 512
SYNC_RENDER_WAIT_SECONDS = 0.5
"""How long a render waits for a free slot before 429: enough to ride out a burst of small
codes (a few ms each), too short to pile up requests behind the largest ones."""
RETRY_AFTER_SECONDS = 1
_FIELDS = QrOptions.model_fields


class TooManyRendersError(ProblemError):
    status = 429
    name = "too-many-renders"
    title = "Too many QR codes are being drawn at once"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class RenderSlots:
    """At most ``size`` synchronous renders at once, each on a thread of its own.

    A request that finds them all taken waits up to ``wait_seconds`` for one, holding no
    thread, then gets 429: however many requests arrive, threads and memory stay bounded.
    """

    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size = size
        self._wait_seconds = wait_seconds
        self._free = anyio.Semaphore(size)

    @asynccontextmanager
    async def taken(self) -> AsyncIterator[None]:
        with anyio.move_on_after(self._wait_seconds) as waiting:
            await self._free.acquire()
        if waiting.cancelled_caught:
            raise TooManyRendersError(
                f"all {self.size} synchronous renders are busy; retry in "
                f"{RETRY_AFTER_SECONDS} s, or submit a job with POST /v1/jobs/qr"
            )
        try:
            yield
        finally:
            self._free.release()


def sync_render_slots(app: FastAPI) -> RenderSlots:
    """The app's render slots, made on first use inside its event loop."""
    slots: RenderSlots | None = getattr(app.state, "qr_render_slots", None)
    if slots is None:
        settings: Settings = app.state.backend.settings
        slots = RenderSlots(settings.qr_max_sync_renders, SYNC_RENDER_WAIT_SECONDS)
        app.state.qr_render_slots = slots
    return slots


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


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
        429: documented(TooManyRendersError)[429] | {"headers": _RETRY_AFTER},
    },
)
async def render_qr_now(
    request: Request,
    backend: BackendDep,
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
    """Render one small QR code now (data up to 512 bytes); submit a job for anything bigger.

    A few are drawn at once; a request that finds no free turn soon gets 429 with Retry-After."""
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
        raise located(invalid, "query") from None
    async with sync_render_slots(request.app).taken():
        rendered = await run_in_threadpool(_checked_render, options, backend.settings)
    return Response(
        rendered.content,
        media_type=rendered.content_type,
        headers={
            "Content-Disposition": f'inline; filename="qr.{rendered.extension}"',
            "Cache-Control": "public, max-age=86400",
        },
    )


def _checked_render(options: QrOptions, settings: Settings) -> RenderedFile:
    try:
        check_qr_options(options, max_png_pixels=settings.qr_max_pixels)
    except ValidationError as invalid:
        raise located(invalid, "query") from None
    return render_qr(options)


def _query_error(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )
