"""The QR job: render one code and keep it as the job's result file."""

from __future__ import annotations

from typing import Any

from brokers import broker
from schemas.jobs import JobResult, Lane
from schemas.qr import QrOptions
from service.settings import Settings
from tasks.deps import AttemptDep
from tasks.kinds import declare_kind
from tasks.qr_limits import check_qr_options
from tasks.qr_render import render_within_limits

QR_TIMEOUT_SECONDS = 60.0
"""The largest code takes well under a second to draw; a minute means something is wrong."""


@broker.task(task_name="offload.qr.render")
async def render_qr_job(options: QrOptions, attempt: AttemptDep) -> dict[str, Any]:
    limit = attempt.backend.settings.qr_max_pixels
    rendered = await attempt.run_cpu(render_within_limits, options, limit)
    stored = await attempt.save_file(
        "qr", f"qr.{rendered.extension}", rendered.content, rendered.content_type
    )
    result = JobResult(data={"format": options.format.value}, files=[stored])
    return result.model_dump(mode="json")


def check_qr_job(options: QrOptions, settings: Settings) -> None:
    """At submit: the data fits at its level and a PNG stays within this server's limit."""
    check_qr_options(options, max_png_pixels=settings.qr_max_pixels)


QR = declare_kind(
    name="qr",
    request=QrOptions,
    task=render_qr_job,
    summary="Queue one QR code to be rendered as PNG, SVG or PDF.",
    lane=Lane.INTERACTIVE,
    max_attempts=3,
    timeout_s=QR_TIMEOUT_SECONDS,
    check=check_qr_job,
)
