"""The PDF operations as job kinds: ``POST /v1/jobs/pdf/<operation>``, kind ``pdf_<...>``.

Each task opens its uploaded input(s), runs its operation from tasks/pdf_ops.py (or
tasks/pdf_metadata.py) as one CPU step with per-page progress (tasks/pdf_jobs.py), and keeps
what it wrote as the job's result files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from brokers import broker
from schemas.jobs import JobResult, ResultFile
from schemas.pdf import (
    MAX_SPLIT_FILES,
    PdfDecryptRequest,
    PdfEncryptRequest,
    PdfExtractTextRequest,
    PdfInput,
    PdfMergeRequest,
    PdfReadMetadataRequest,
    PdfRotateRequest,
    PdfSplitRequest,
    PdfWriteMetadataRequest,
)
from tasks import pdf_metadata, pdf_ops
from tasks.deps import AttemptDep, JobAttempt
from tasks.job_secrets import SecretUnreadable, opened
from tasks.pdf_jobs import PdfJobFailure, pdf_limits_of, run_pdf_step
from tasks.pdf_ops import Source
from tasks.pdf_submit import check_merge_files, declare_pdf_kind, merge_inputs

PDF_TYPE = "application/pdf"


def _result(data: dict[str, Any], files: list[ResultFile]) -> dict[str, Any]:
    return JobResult(data=data, files=files).model_dump(mode="json")


async def _source(attempt: JobAttempt, request: PdfInput) -> Source:
    upload = await attempt.input(request.file_id)
    return Source(upload.path, upload.name, _opened(attempt, request.password))


def _opened(attempt: JobAttempt, secret: SecretStr | None) -> str | None:
    try:
        return opened(secret, attempt.backend.settings.data_dir)
    except SecretUnreadable as error:
        raise PdfJobFailure(error.error_type, str(error)) from None


async def _one_file(
    attempt: JobAttempt,
    name: str,
    content_type: str,
    fn: Callable[..., Any],
    *args: Any,
) -> tuple[Any, ResultFile]:
    """Run ``fn(*args, out, limits, progress)`` and keep ``out`` as the result file ``name``."""
    limits = pdf_limits_of(attempt.backend.settings)
    suffix = "." + name.rsplit(".", 1)[-1]
    async with attempt.scratch_file(suffix) as out:
        value = await run_pdf_step(attempt, "pages", fn, *args, out, limits)
        stored = await attempt.keep_file(name.rsplit(".", 1)[0], name, out, content_type)
    return value, stored


@broker.task(task_name="offload.pdf.merge")
async def merge_pdf_job(request: PdfMergeRequest, attempt: AttemptDep) -> dict[str, Any]:
    sources = []
    for file_id in request.file_ids:
        upload = await attempt.input(file_id)
        sources.append(Source(upload.path, upload.name))
    limits = pdf_limits_of(attempt.backend.settings)
    async with attempt.scratch_file(".pdf") as out:
        pages = await run_pdf_step(attempt, "files", pdf_ops.merge, sources, out, limits)
        stored = await attempt.keep_file("merged", "merged.pdf", out, PDF_TYPE)
    return _result({"pages": pages, "files": len(sources)}, [stored])


@broker.task(task_name="offload.pdf.split")
async def split_pdf_job(request: PdfSplitRequest, attempt: AttemptDep) -> dict[str, Any]:
    source = await _source(attempt, request)
    ranges = request.page_ranges()
    if request.output == "zip":
        parts, stored = await _one_file(
            attempt, "parts.zip", "application/zip", pdf_ops.split_to_zip, source, ranges
        )
        files = [stored]
    else:
        limits = pdf_limits_of(attempt.backend.settings)
        if ranges is None:
            count = await run_pdf_step(attempt, "pages", pdf_ops.count_pages, source, limits)
        else:
            count = len(ranges)
        if count > MAX_SPLIT_FILES:  # queued without the submit check (which says so first)
            raise PdfJobFailure(
                "too_many_parts", f"{count} parts is more than {MAX_SPLIT_FILES} result files"
            )
        async with contextlib.AsyncExitStack() as scratch:
            outs = [
                await scratch.enter_async_context(attempt.scratch_file(".pdf"))
                for _ in range(count)
            ]
            parts = await run_pdf_step(
                attempt, "pages", pdf_ops.split_to_files, source, ranges, outs, limits
            )
            files = [
                await attempt.keep_file(name.removesuffix(".pdf"), name, out, PDF_TYPE)
                for (name, _), out in zip(parts, outs, strict=True)
            ]
    listed = [{"name": name, "pages": pages} for name, pages in parts]
    return _result({"parts": listed}, files)


@broker.task(task_name="offload.pdf.rotate")
async def rotate_pdf_job(request: PdfRotateRequest, attempt: AttemptDep) -> dict[str, Any]:
    source = await _source(attempt, request)
    turned, stored = await _one_file(
        attempt,
        "rotated.pdf",
        PDF_TYPE,
        pdf_ops.rotate,
        source,
        request.page_ranges(),
        request.angle,
    )
    return _result({"pages_rotated": turned, "angle": request.angle}, [stored])


@broker.task(task_name="offload.pdf.extract_text")
async def extract_text_job(request: PdfExtractTextRequest, attempt: AttemptDep) -> dict[str, Any]:
    source = await _source(attempt, request)
    (pages, characters), stored = await _one_file(
        attempt,
        "text.json",
        "application/json",
        pdf_ops.extract_text,
        source,
        request.page_ranges(),
    )
    return _result({"pages": pages, "characters": characters}, [stored])


@broker.task(task_name="offload.pdf.read_metadata")
async def read_metadata_job(request: PdfReadMetadataRequest, attempt: AttemptDep) -> dict[str, Any]:
    source = await _source(attempt, request)
    limits = pdf_limits_of(attempt.backend.settings)
    metadata = await run_pdf_step(attempt, "files", pdf_metadata.read_metadata, source, limits)
    return _result(metadata, [])


@broker.task(task_name="offload.pdf.write_metadata")
async def write_metadata_job(
    request: PdfWriteMetadataRequest, attempt: AttemptDep
) -> dict[str, Any]:
    source = await _source(attempt, request)
    info, stored = await _one_file(
        attempt, "document.pdf", PDF_TYPE, pdf_metadata.write_metadata, source, request.metadata
    )
    return _result({"info": info}, [stored])


@broker.task(task_name="offload.pdf.encrypt")
async def encrypt_pdf_job(request: PdfEncryptRequest, attempt: AttemptDep) -> dict[str, Any]:
    source = await _source(attempt, request)
    pages, stored = await _one_file(
        attempt,
        "encrypted.pdf",
        PDF_TYPE,
        pdf_ops.encrypt,
        source,
        _opened(attempt, request.user_password),
        _opened(attempt, request.owner_password),
    )
    return _result({"pages": pages, "algorithm": "AES-256"}, [stored])


@broker.task(task_name="offload.pdf.decrypt")
async def decrypt_pdf_job(request: PdfDecryptRequest, attempt: AttemptDep) -> dict[str, Any]:
    source = await _source(attempt, request)
    (pages, was_encrypted), stored = await _one_file(
        attempt, "decrypted.pdf", PDF_TYPE, pdf_ops.decrypt, source
    )
    return _result({"pages": pages, "was_encrypted": was_encrypted}, [stored])


PDF_MERGE = declare_pdf_kind(
    "merge",
    request=PdfMergeRequest,
    task=merge_pdf_job,
    summary="Queue uploaded PDFs to be merged, in order, into one.",
    check=None,
    inputs=merge_inputs,
    check_files=check_merge_files,
)
PDF_SPLIT = declare_pdf_kind(
    "split",
    request=PdfSplitRequest,
    task=split_pdf_job,
    summary="Queue an uploaded PDF to be split into one PDF per page range (a ZIP or files).",
)
PDF_ROTATE = declare_pdf_kind(
    "rotate",
    request=PdfRotateRequest,
    task=rotate_pdf_job,
    summary="Queue pages of an uploaded PDF to be turned 90, 180 or 270°.",
)
PDF_EXTRACT_TEXT = declare_pdf_kind(
    "extract-text",
    request=PdfExtractTextRequest,
    task=extract_text_job,
    summary="Queue the text of an uploaded PDF to be extracted as JSON.",
)
PDF_READ_METADATA = declare_pdf_kind(
    "read-metadata",
    request=PdfReadMetadataRequest,
    task=read_metadata_job,
    summary="Queue the metadata of an uploaded PDF to be read into the job's result.",
)
PDF_WRITE_METADATA = declare_pdf_kind(
    "write-metadata",
    request=PdfWriteMetadataRequest,
    task=write_metadata_job,
    summary="Queue an uploaded PDF to be written with new metadata (Info and XMP).",
)
PDF_ENCRYPT = declare_pdf_kind(
    "encrypt",
    request=PdfEncryptRequest,
    task=encrypt_pdf_job,
    summary="Queue an uploaded PDF to be encrypted with AES-256.",
)
PDF_DECRYPT = declare_pdf_kind(
    "decrypt",
    request=PdfDecryptRequest,
    task=decrypt_pdf_job,
    summary="Queue an encrypted uploaded PDF to be written without it.",
)
