"""The QR job: render one code and keep it as the job's result file."""

from __future__ import annotations

from typing import Any

from brokers import broker
from schemas.jobs import JobResult
from schemas.qr import QrOptions
from tasks.deps import AttemptDep
from tasks.qr_render import render_within_limits


@broker.task(task_name="offload.qr.render")
async def render_qr_job(options: QrOptions, attempt: AttemptDep) -> dict[str, Any]:
    limit = attempt.backend.settings.qr_max_pixels
    rendered = await attempt.run_cpu(render_within_limits, options, limit)
    stored = await attempt.save_file(
        "qr", f"qr.{rendered.extension}", rendered.content, rendered.content_type
    )
    result = JobResult(data={"format": options.format.value}, files=[stored])
    return result.model_dump(mode="json")
