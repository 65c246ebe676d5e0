"""The QR job: render one code and keep it as the job's result file."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers import broker
from schemas.jobs import JobResult
from schemas.qr import QrOptions, check_qr_options
from tasks.deps import AttemptDep
from tasks.qr_render import RenderedFile, render_qr


def render_within_limits(options: QrOptions, max_png_pixels: int) -> RenderedFile:
    """Check again what the API checked at submit: a job queued under a higher pixel limit
    (or by a client that skipped the API) must not render beyond this worker's limit."""
    check_qr_options(options, max_png_pixels=max_png_pixels)
    return render_qr(options)


@broker.task(task_name="offload.qr.render")
async def render_qr_job(options: QrOptions, attempt: AttemptDep) -> dict[str, Any]:
    limit = attempt.backend.settings.qr_max_pixels
    rendered = await asyncio.to_thread(render_within_limits, options, limit)
    stored = await attempt.save_file(
        "qr", f"qr.{rendered.extension}", rendered.content, rendered.content_type
    )
    result = JobResult(data={"format": options.format.value}, files=[stored])
    return result.model_dump(mode="json")
