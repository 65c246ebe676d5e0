"""The QR job: render one code and keep it as the job's result file."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers import broker
from schemas.jobs import JobResult
from schemas.qr import QrOptions
from tasks.deps import AttemptDep
from tasks.qr_render import render_qr


@broker.task(task_name="offload.qr.render")
async def render_qr_job(options: QrOptions, attempt: AttemptDep) -> dict[str, Any]:
    rendered = await asyncio.to_thread(render_qr, options)
    stored = await attempt.save_file(
        "qr", f"qr.{rendered.extension}", rendered.content, rendered.content_type
    )
    result = JobResult(data={"format": options.format.value}, files=[stored])
    return result.model_dump(mode="json")
