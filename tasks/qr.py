"""The QR job: render one code and keep it as the job's result file."""

from __future__ import annotations

from typing import Any

from brokers import broker
from schemas.jobs import JobResult
from schemas.qr import QrOptions
from tasks.deps import BackendDep, ContextDep
from tasks.qr_render import render_qr


@broker.task(task_name="offload.qr.render")
def render_qr_job(options: QrOptions, backend: BackendDep, context: ContextDep) -> dict[str, Any]:
    rendered = render_qr(options)
    stored = backend.files.save(
        context.message.task_id,
        file_id="qr",
        name=f"qr.{rendered.extension}",
        content=rendered.content,
        content_type=rendered.content_type,
    )
    result = JobResult(data={"format": options.format.value}, files=[stored])
    return result.model_dump(mode="json")
