"""Drawing on an uploaded PDF as job kinds: ``POST /v1/jobs/pdf/watermark`` (kind
``pdf_watermark``) and ``POST /v1/jobs/pdf/stamp-qr`` (kind ``pdf_stamp_qr``).

Each task opens its upload, draws in one CPU step with per-page progress (a cancel seen at
that checkpoint kills the step; tasks/pdf_jobs.py) and keeps the PDF it wrote as the job's
result. The submit checks are the other PDF kinds' (tasks/pdf_submit.py): the upload is a
PDF, readable, within the page limit, and ``pages`` within its pages; the stamp's also
checks that its code fits and scans.
"""

from __future__ import annotations

from typing import Any

from brokers import broker
from schemas.jobs import JobResult
from schemas.pdf_draw import PdfStampQrRequest, PdfWatermarkRequest
from service.settings import Settings
from tasks.deps import AttemptDep, JobAttempt
from tasks.job_secrets import SecretUnreadable, opened
from tasks.pdf_draw import check_stamp_qr
from tasks.pdf_draw_files import stamp_qr_file, watermark_file
from tasks.pdf_jobs import PdfJobFailure, pdf_limits_of, run_pdf_step
from tasks.pdf_ops import Source
from tasks.pdf_submit import declare_pdf_kind, seal_passwords

PDF_TYPE = "application/pdf"


async def _drawn(
    attempt: JobAttempt,
    request: PdfWatermarkRequest | PdfStampQrRequest,
    step: Any,
    name: str,
) -> dict[str, Any]:
    upload = await attempt.input(request.file_id)
    try:
        password = opened(request.password, attempt.backend.settings.data_dir)
    except SecretUnreadable as error:
        raise PdfJobFailure(error.error_type, str(error)) from None
    source = Source(upload.path, upload.name, password)
    limits = pdf_limits_of(attempt.backend.settings)
    async with attempt.scratch_file(".pdf") as out:
        pages = await run_pdf_step(attempt, "pages", step, source, request, out, limits)
        stored = await attempt.keep_file(name.removesuffix(".pdf"), name, out, PDF_TYPE)
    result = JobResult(data={"pages_drawn": pages}, files=[stored])
    return result.model_dump(mode="json")


@broker.task(task_name="offload.pdf.watermark")
async def watermark_pdf_job(request: PdfWatermarkRequest, attempt: AttemptDep) -> dict[str, Any]:
    return await _drawn(attempt, request, watermark_file, "watermarked.pdf")


@broker.task(task_name="offload.pdf.stamp_qr")
async def stamp_qr_pdf_job(request: PdfStampQrRequest, attempt: AttemptDep) -> dict[str, Any]:
    return await _drawn(attempt, request, stamp_qr_file, "stamped.pdf")


def check_stamp_request(request: PdfStampQrRequest, settings: Settings) -> None:
    """At submit: the code fits and scans (422 naming data or size); passwords sealed."""
    check_stamp_qr(request)
    seal_passwords(request, settings)


PDF_WATERMARK = declare_pdf_kind(
    "watermark",
    request=PdfWatermarkRequest,
    task=watermark_pdf_job,
    summary="Queue a text watermark to be drawn on pages of an uploaded PDF.",
)
PDF_STAMP_QR = declare_pdf_kind(
    "stamp-qr",
    request=PdfStampQrRequest,
    task=stamp_qr_pdf_job,
    summary="Queue a vector QR code to be stamped on pages of an uploaded PDF.",
    check=check_stamp_request,
)
